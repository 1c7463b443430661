"""Captioning benchmarks, measured side by side in one run (these machines are noisy).

    python bench/caption_bench.py [--images 16] [--repeats 3] [--threads 1] [--model DIR ...]

1. batched / per-image: time to caption N images with batch_size 8 over batch_size 1
   (goal <= 0.4).
2. int8-dynamic / fp32 on CPU: captioning time of the torch dynamic-int8 model over the fp32
   one (goal <= 0.6), and the share of greedy captions that stay identical (goal >= 90%).

By default it uses the tiny random-weight BLIP and ViT-GPT2 built into a temp dir, plus a
wider random BLIP (``--wide``, same tokenizer and processor). Random
weights give near-flat logits, so their caption agreement says little about real weights; and
tiny layers are too small for int8 kernels to pay. Pass ``--model DIR`` (a real captioner
folder) to measure real weights. Timings are medians over ``--repeats`` alternating runs.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # repo root's parent, when not pip-installed


def _pack():
    try:
        import llm_assist  # noqa: F401
    except ImportError:  # run from a checkout whose folder is not named llm_assist
        import importlib.util

        root = Path(__file__).resolve().parents[1]
        spec = importlib.util.spec_from_file_location("llm_assist", root / "__init__.py",
                                                      submodule_search_locations=[str(root)])
        module = importlib.util.module_from_spec(spec)
        sys.modules["llm_assist"] = module
        spec.loader.exec_module(module)


def _images(n: int):
    import torch

    g = torch.Generator().manual_seed(1234)
    base = torch.rand(n, 1, 1, 3, generator=g)  # a colour per image plus noise and a gradient
    ramp = torch.linspace(0, 1, 64).view(1, 1, 64, 1)
    return (0.6 * base + 0.3 * ramp + 0.1 * torch.rand(n, 64, 64, 3, generator=g)).clamp(0, 1)


def build_wide_blip(tiny_dir: Path, out: Path, width: int = 512, layers: int = 4) -> Path:
    """The tiny BLIP's tokenizer and processor with wider random layers (where int8 kernels can pay)."""
    import shutil

    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration

    config = BlipConfig.from_pretrained(tiny_dir)
    for sub in (config.text_config, config.vision_config):
        sub.hidden_size, sub.intermediate_size, sub.num_hidden_layers = width, 4 * width, layers
        sub.num_attention_heads = 8
    config.text_config.encoder_hidden_size = width
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(config).eval()
    model.generation_config = BlipForConditionalGeneration.from_pretrained(tiny_dir).generation_config
    model.save_pretrained(out)
    for f in tiny_dir.iterdir():
        if f.name not in ("config.json", "model.safetensors", "generation_config.json"):
            shutil.copy(f, out / f.name)
    return out


def _timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def bench_model(source: str, images, repeats: int, max_new_tokens: int) -> dict:
    from llm_assist.core import captioning as C
    from llm_assist.core.hf_loading import LoadOptions

    fp32 = C.load_captioner_from_source(source, LoadOptions(device="cpu", dtype="fp32"))
    int8 = C.load_captioner_from_source(source, LoadOptions(device="cpu", dtype="fp32", quantization="int8-dynamic (CPU)"))
    batched = C.CaptionSettings(max_new_tokens=max_new_tokens, batch_size=8)
    single = C.with_batch_size(batched, 1)
    fp32.caption(images[:2], batched)  # warm-up
    int8.caption(images[:2], batched)
    t_batch, t_single, t_fp32, t_int8 = [], [], [], []
    caps_fp32 = caps_int8 = None
    for _ in range(repeats):  # alternate so load changes hit both sides alike
        t, _r = _timed(lambda: fp32.caption(images, batched), 1)
        t_batch.append(t)
        t, _r = _timed(lambda: fp32.caption(images, single), 1)
        t_single.append(t)
        t, caps_fp32 = _timed(lambda: fp32.caption(images, batched), 1)
        t_fp32.append(t)
        t, caps_int8 = _timed(lambda: int8.caption(images, batched), 1)
        t_int8.append(t)
    same = sum(a == b for a, b in zip(caps_fp32, caps_int8)) / len(caps_fp32)
    return {
        "batched_s": statistics.median(t_batch), "per_image_s": statistics.median(t_single),
        "fp32_s": statistics.median(t_fp32), "int8_s": statistics.median(t_int8), "identical": same,
        "family": fp32.family,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared 2-core box more threads spin and dominate)")
    parser.add_argument("--wide", type=int, default=512,
                        help="also measure a random BLIP this wide (4 layers; 0 = skip): tiny layers are too small for int8 to pay")
    parser.add_argument("--model", action="append", default=[], help="captioner folder(s) to measure instead of the tiny ones")
    args = parser.parse_args(argv)
    _pack()
    import torch

    torch.set_num_threads(args.threads)
    from llm_assist.core.tiny_models import build_tiny_models

    images = _images(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        sources = args.model
        if not sources:
            build_tiny_models(tmp, only=["tiny-blip", "tiny-vit-gpt2"])
            sources = [str(Path(tmp) / "LLM" / "tiny-blip"), str(Path(tmp) / "LLM" / "tiny-vit-gpt2")]
            if args.wide:
                sources.append(str(build_wide_blip(Path(sources[0]), Path(tmp) / "LLM" / f"wide{args.wide}-blip", args.wide)))
        print(f"captioning {args.images} images of 64x64, {args.max_new_tokens} new tokens, "
              f"{args.threads} thread(s), median of {args.repeats}")
        print(f"{'model':<16} {'batched/per-image':>18} {'int8/fp32 time':>15} {'identical':>10}   (seconds: batch8, batch1, fp32, int8)")
        for source in sources:
            r = bench_model(source, images, args.repeats, args.max_new_tokens)
            print(f"{Path(source).name:<16} {r['batched_s'] / r['per_image_s']:>18.2f} {r['int8_s'] / r['fp32_s']:>15.2f} "
                  f"{r['identical']:>10.0%}   ({r['batched_s']:.2f}, {r['per_image_s']:.2f}, {r['fp32_s']:.2f}, {r['int8_s']:.2f})")
        print("goals: batched/per-image <= 0.4; int8/fp32 <= 0.6 with >= 90% identical captions "
              "(agreement on random tiny weights is not evidence for real weights)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
