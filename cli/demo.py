"""``demo``: run an example workflow headless with real models when present, else tiny ones.

Used by ``./dev.sh demo``. Real models are taken from the models folder (``--models``,
$LLM_ASSIST_MODELS or ./models); when a stage has none, the offline tiny random-weight models
are built (once) into ``.cache/tiny-models`` and used instead, and the demo says so loudly.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
TINY_DIR = REPO / ".cache" / "tiny-models"
# workflow input -> (model kind, how the folder is recognised, tiny fallback)
MODEL_SLOTS = {
    "captioner": ("LLM", "captioner", "tiny-blip"),
    "pipeline": ("diffusers", "pipeline", "tiny-sd15"),
    "language_model": ("LLM", "causal-lm", "tiny-qwen2-chat"),
    "image_encoder": ("clip_vision", "encoder", "tiny-clip"),
}


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=__doc__)
    p.add_argument("--workflow", default="variation", help="example workflow name in example_workflows/ (default: variation)")
    p.add_argument("--models", help="models folder laid out like ComfyUI's models/ (default: $LLM_ASSIST_MODELS or ./models)")
    p.add_argument("--output", default="output/demo", help="where the outputs land (default: output/demo)")
    p.add_argument("--tiny", action="store_true", help="use the tiny random-weight models even when real ones exist")


def _kind_of(folder: Path) -> str:
    config = folder / "config.json"
    if (folder / "model_index.json").is_file():
        return "pipeline"
    if not config.is_file():
        return ""
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    model_type = str(data.get("model_type", ""))
    archs = " ".join(data.get("architectures") or [])
    if model_type in ("clip", "siglip", "siglip2"):
        return "encoder"
    if model_type in ("blip", "blip-2", "git", "vision-encoder-decoder") or "Vision" in archs or "ImageTextToText" in archs:
        return "captioner"
    if "CausalLM" in archs or "LMHeadModel" in archs:
        return "causal-lm"
    return ""


def find_real_models(models: Path) -> dict[str, str]:
    found = {}
    for slot, (kind, want, _) in MODEL_SLOTS.items():
        root = models / kind
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("tiny-")):
            if _kind_of(folder) == want:
                found[slot] = folder.name
                break
    return found


def ensure_tiny_models() -> Path:
    stamp = TINY_DIR / ".complete"
    if not stamp.is_file():
        from ..core.tiny_models import build_tiny_models

        build_tiny_models(TINY_DIR)
        stamp.write_text("ok\n")
    return TINY_DIR


def ensure_example_image(input_dir: Path) -> None:
    """ComfyUI ships input/example.png; headless we draw a deterministic stand-in if it is missing."""
    from ..core.sample_images import write_example_images

    write_example_images(input_dir)


def command(args) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ..core import host
    from ..runner import run_workflow
    from ..runner.tiny_sets import tiny_model_sets

    models = Path(args.models or os.environ.get("LLM_ASSIST_MODELS") or "models").resolve()
    workflow = REPO / "example_workflows" / f"{args.workflow}.json"
    if not workflow.is_file():
        names = sorted(p.stem for p in (REPO / "example_workflows").glob("*.json"))
        raise ValueError(f"--workflow {args.workflow!r} not found: use one of {names}")
    output = Path(args.output).resolve()
    input_dir = output / "input"
    ensure_example_image(input_dir)
    tiny_sets = tiny_model_sets(workflow)
    real = {} if args.tiny else find_real_models(models)
    wanted = {item.split("=", 1)[0]: item.split("=", 1)[1] for item in tiny_sets}
    loaders = _loader_slots(workflow)
    sets, missing = [], []
    for target, tiny_value in wanted.items():
        slot = loaders.get(target.split(".", 1)[0])
        if slot is None:  # not a model choice (e.g. a folder path): keep the tiny-run value
            sets.append(f"{target}={tiny_value}")
        elif slot in real:
            sets.append(f"{target}={real[slot]}")
        else:
            missing.append(slot)
    models_root = models
    used = {slot: real[slot] for slot in loaders.values() if slot in real}
    if missing:
        log.warning("=" * 72)
        log.warning("NO REAL MODELS for %s in %s", ", ".join(sorted(set(missing))), models)
        log.warning("USING THE TINY RANDOM-WEIGHT TEST MODELS: the pipeline runs end to end, but")
        log.warning("captions are gibberish and images are noise. Put real models in %s (README 'Models').", models)
        log.warning("=" * 72)
        models_root = ensure_tiny_models()
        sets = tiny_sets
        used = {slot: "tiny (random weights)" for slot in loaders.values()}
    previous = host.set_models_root(models_root)
    try:
        result = run_workflow(workflow, sets=sets, output_dir=output, input_dir=input_dir)
    finally:
        host.set_models_root(previous)
    report = output / "report.json"
    tmp = report.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"workflow": workflow.name, "models": used, "outputs": result.outputs,
                               "files": [str(f) for f in result.files]}, indent=2, default=str), encoding="utf-8")
    tmp.replace(report)
    print(f"demo finished in {result.seconds:.1f} s: outputs in {output}")
    for path in result.files:
        print(f"  {path}")
    print(f"  {report}")
    return 0


def _loader_slots(workflow: Path) -> dict[str, str]:
    """node id -> model slot for the workflow's loader nodes."""
    loaders = {
        "LLMAssistLoadCaptioner": "captioner",
        "LLMAssistLoadPipeline": "pipeline",
        "LLMAssistLoadLanguageModel": "language_model",
        "LLMAssistLoadImageEncoder": "image_encoder",
    }
    data = json.loads(workflow.read_text(encoding="utf-8"))
    return {str(n["id"]): loaders[n["type"]] for n in data.get("nodes", []) if n.get("type") in loaders}
