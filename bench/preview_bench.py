"""Live-preview cost (CPU), side by side in one run, with ComfyUI's own previewers.

    COMFYUI_DIR=/opt/comfyui /opt/comfyui/.venv/bin/python bench/preview_bench.py [--size 256] [--steps 8] [--repeats 3]

Runs under ComfyUI's Python with ComfyUI's modules imported in-process (folder_paths,
comfy.model_management, latent_preview), so ``core.host`` takes the in-ComfyUI paths: the
previews are the ones a user sees (``--preview-method`` latent2rgb via comfy.latent_formats, or
the pack's own tiny VAE). On a mid-size random SD-style pipeline (UNet 64/128/256 channels):

1. per-step preview cost: median time of one preview call / median time of one denoising step
   (goal < 0.05); a previewer costlier than that is rate-limited at run time to 5 % of the
   denoising time (core/diffusion/preview.py ``within_budget``: it then previews every few steps);
2. end to end: Generate with latent2rgb previews / Generate with previews off, arms interleaved.

A real SD 1.5 / SDXL step costs far more than this mid-size UNet's, so ratios on real models
are smaller still. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]


def _setup(tmp: Path) -> None:
    comfy_dir = os.environ.get("COMFYUI_DIR")
    if not comfy_dir:
        raise SystemExit("set COMFYUI_DIR to a ComfyUI checkout (and run with its Python)")
    link = tmp / "pkg" / "llm_assist"
    link.parent.mkdir(parents=True)
    link.symlink_to(REPO, target_is_directory=True)
    sys.path[:0] = [str(link.parent), comfy_dir]
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.model_management  # noqa: F401 - core.host sees ComfyUI from here on
    import folder_paths

    from llm_assist.core import host
    from llm_assist.core.tiny_models import build_tiny_models

    build_tiny_models(tmp / "models", only=["tiny-sd15", "tiny-taesd"])
    for kind in ("diffusers", "vae_approx"):
        folder_paths.add_model_folder_path(kind, str(tmp / "models" / kind))
    assert host.in_comfyui()
    spec = __import__("importlib.util").util.spec_from_file_location("generate_bench", REPO / "bench" / "generate_bench.py")
    module = __import__("importlib.util").util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module._mid_pipeline(tmp / "models")


def _method(name: str) -> None:
    import comfy.cli_args as cli

    cli.args.preview_method = cli.LatentPreviewMethod(name)


def bench(size: int, steps: int, repeats: int) -> dict:
    import torch

    from llm_assist.core.diffusion import preview
    from llm_assist.core.diffusion.loading import load_pipeline
    from llm_assist.core.diffusion.run import GenerateRequest, run

    req = GenerateRequest(positive="a cat on a table", steps=steps, width=size, height=size, seed=1)
    handles = {"none": load_pipeline("mid-sd"), "latent2rgb": load_pipeline("mid-sd"),
               "tiny_vae": load_pipeline("mid-sd", tiny_vae="tiny-taesd")}
    latents = torch.randn(1, 4, size // 8, size // 8)
    out: dict = {"size": size, "steps": steps}
    times: dict = {k: [] for k in handles}
    for name, handle in handles.items():  # warm-up
        _method("none" if name == "none" else "latent2rgb")
        run(handle, "txt2img", req)
    for _ in range(repeats):
        for name, handle in handles.items():
            _method("none" if name == "none" else "latent2rgb")
            t = time.perf_counter()
            run(handle, "txt2img", req)
            times[name].append(time.perf_counter() - t)
    step_s = statistics.median(times["none"]) / steps
    out["step_ms"] = round(step_s * 1000, 3)
    preview.BUDGET = float("inf")  # time every call (the run-time budget would skip most of them)
    for name in ("latent2rgb", "tiny_vae"):
        _method("latent2rgb")
        handle = handles[name]
        previewer = preview.make_previewer(handle, handle.pipe, size, size)
        assert previewer is not None and previewer(latents) is not None, name
        calls = []
        for _ in range(50):
            t = time.perf_counter()
            previewer(latents)
            calls.append(time.perf_counter() - t)
        call_s = statistics.median(calls)
        out[name] = {"preview_ms": round(call_s * 1000, 3), "preview_over_step": round(call_s / step_s, 4),
                     "with_budget": round(min(call_s / step_s, 0.05), 4),
                     "run_with_over_without": round(statistics.median(times[name]) / statistics.median(times["none"]), 4)}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        _setup(Path(tmp))
        print(json.dumps(bench(args.size, args.steps, args.repeats), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
