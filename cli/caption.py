"""``caption FOLDER --model NAME``: caption every image of a folder into ``<stem>.txt`` files.

Resumable: in skip mode (the default) images that already have a caption file are skipped, and
each batch's files are written atomically right after the batch, so an interrupted run (Ctrl-C,
a kill) can simply be started again. The first Ctrl-C stops within one token; a second one
aborts at once.
"""
from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)


def add_parser(sub, name: str, help_text: str) -> None:
    from ..core.captioning import PRESETS
    from ..core.hf_loading import DEVICES, DTYPES, QUANTIZATIONS

    p = sub.add_parser(name, help=help_text, description=__doc__.split("\n\n", 1)[1].strip())
    p.add_argument("folder", metavar="SOURCE",
                   help="a folder of images, a glob such as 'photos/**/*.jpg' (quoted), or a .jsonl/.parquet "
                        "manifest with a path column")
    p.add_argument("--model", required=True,
                   help="captioner folder name under MODELS/LLM (or an absolute path to a model folder)")
    p.add_argument("--models", help="models folder laid out like ComfyUI's models/ (default: $LLM_ASSIST_MODELS or ./models)")
    p.add_argument("--mode", choices=["skip", "overwrite", "append"], default="skip",
                   help="skip: keep existing .txt files and resume (default); overwrite; append a new line")
    p.add_argument("--output", help="write the .txt files into this folder instead of beside the images")
    p.add_argument("--batch-size", type=int, default=4, help="images per generate call (default 4)")
    p.add_argument("--glob", default="*", help="file name pattern (default *)")
    p.add_argument("--recursive", action="store_true", help="include sub-folders")
    p.add_argument("--max-new-tokens", type=int, default=40, help="longest caption in tokens (default 40)")
    p.add_argument("--num-beams", type=int, default=1, help="beam search width (default 1 = greedy)")
    p.add_argument("--preset", choices=PRESETS, default="short",
                   help="instruction preset (default short; see Caption Image's tooltip per model family)")
    p.add_argument("--instruction", default="", help="custom instruction (implies --preset custom)")
    p.add_argument("--prefix", default="", help="text put before every caption")
    p.add_argument("--suffix", default="", help="text put after every caption")
    p.add_argument("--seed", type=int, default=0, help="seed (only matters with sampling models/settings)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--dtype", choices=DTYPES, default="auto")
    p.add_argument("--quantization", default="none",
                   help=f"one of: {', '.join(QUANTIZATIONS)} (prefixes such as int8-dynamic work)")
    p.add_argument("--allow-download", action="store_true", help="allow a Hugging Face repo id to be downloaded")
    from .caption_server import add_server_arguments

    add_server_arguments(p)
    from .caption_dataset import add_engine_arguments

    add_engine_arguments(p)


def _quantization(value: str) -> str:
    from ..core.hf_loading import QUANTIZATIONS

    matches = [q for q in QUANTIZATIONS if q == value or q.split(" ")[0] == value]
    if not matches:
        raise ValueError(f"--quantization must be one of {QUANTIZATIONS}, got {value!r}")
    return matches[0]


class _Bar:
    """A one-line text progress bar on stderr."""

    def __init__(self, stream=None):
        # sys.stderr looked up now, not at import (a default argument would keep the first one seen)
        self.stream, self.start = stream or sys.stderr, time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        width = 30
        filled = int(width * done / max(total, 1))
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        eta = (total - done) / rate if rate else 0.0
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} images, {rate:.2f} img/s, eta {eta:.0f} s")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def command(args) -> int:
    import threading

    from ..core import captioning, host, image_folder, owner
    from ..core.captioning_folder import caption_files, caption_targets, check_targets
    from ..core.hf_loading import LoadOptions, check_safe_folder

    if args.models:
        host.set_models_root(args.models)
    with owner.override(allow_download=bool(args.allow_download)):  # here the user is the owner
        options = LoadOptions(device=args.device, dtype=args.dtype, quantization=_quantization(args.quantization),
                              allow_download=args.allow_download, keep_loaded=True)
    preset = "custom" if args.instruction.strip() else args.preset
    settings = captioning.CaptionSettings(preset=preset, custom_instruction=args.instruction,
                                          max_new_tokens=args.max_new_tokens, num_beams=args.num_beams,
                                          seed=args.seed, batch_size=args.batch_size)
    from ..core.dataset_source import list_source

    paths = list_source(args.folder, args.glob, recursive=args.recursive)
    mode = image_folder.normalize_mode(args.mode)
    # one caption file per image, writable, before the model loads (caption_files checks again)
    check_targets(caption_targets(paths, args.output), mode)
    if args.engine == "ray" or args.manifest:
        from .caption_dataset import command as dataset_command

        return dataset_command(args, paths, options, settings)
    model_path = Path(args.model).expanduser()
    if args.server:  # an OpenAI-compatible model server instead of a local model
        from .caption_server import server_captioner

        captioner = server_captioner(args)
    elif model_path.is_absolute():
        if not model_path.is_dir():
            raise ValueError(f"--model {args.model!r} is not a folder: give a model folder or a name under models/LLM")
        check_safe_folder(model_path)
        captioner = captioning.load_captioner_from_source(str(model_path.resolve()), options)
    else:
        captioner = captioning.load_captioner(args.model, options)
    log.info("captioning %d images in %s with %s (%s)", len(paths), args.folder, captioner.name, captioner.family)

    bar = _Bar()
    if not logging.getLogger().isEnabledFor(logging.DEBUG):  # the bar replaces the per-token progress log
        logging.getLogger(host.__name__).setLevel(logging.WARNING)
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):  # first Ctrl-C: stop after the current token; second: abort
        signal.signal(signal.SIGINT, previous if callable(previous) else signal.default_int_handler)
        sys.stderr.write("\nstopping after the current token (Ctrl-C again to abort)...\n")
        host.request_interrupt()

    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:
        signal.signal(signal.SIGINT, on_sigint)
    try:
        result = caption_files(captioner, paths, settings, mode=mode,
                               output_dir=args.output, prefix=args.prefix, suffix=args.suffix, on_progress=bar)
    except host.interrupt_exception_types():
        sys.stderr.write("\n")
        print(f"interrupted: the captions finished so far are saved; run the same command again to resume "
              f"({len(paths)} images in {args.folder})")
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
        host.clear_interrupt()
    print(result.summary())
    return 0
