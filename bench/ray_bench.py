"""Dataset captioning: the local engine vs Ray with 1 and 2 workers, side by side in one run.

    python bench/ray_bench.py [--images 96] [--batch-size 8] [--tokens 20] [--model DIR]

For each engine it times a job of N images and one of 2N images: the whole job's wall time
(Ray's start-up and the workers' model loads included), and the marginal rate N / (T(2N) - T(N)),
the images per second a long job runs at once started (the fixed costs cancel out; Ray Data
hands results back in bursts, so rates between arrivals would mislead). Ray's overhead per image
is ``rate(local) / rate(ray, 1 worker) - 1`` (goal: under 10 % at batch 8).

The planned scaling for N GPUs (one worker per GPU, ``--gpus-per-worker 1``) is the per-worker
marginal rate times N, as long as reading and decoding images keeps up (about 2 CPU cores per
worker) -- the workers share nothing but the driver, which only writes small text files.

By default it captions random 64 px images with the tiny random-weight BLIP built into a temp
dir; ``--model DIR`` measures a real captioner folder. Needs the ray extra.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from caption_bench import _pack, build_wide_blip  # noqa: E402  (makes llm_assist importable from any checkout)


def _write_images(folder: Path, n: int) -> list[Path]:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"img{i:04d}.png"
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _time_job(paths, job, options, engine: str) -> float:
    from llm_assist.core.dataset_manifest import Manifest
    from llm_assist.core.dataset_run import run

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run(paths, job, options, engine=engine, manifest=Manifest(Path(tmp) / "m.jsonl"), sidecars=False)
        return time.perf_counter() - start


def _measure(paths, job, options, engine: str) -> dict:
    if engine == "local":  # a Ray job loads the model in every new actor; locally the first job warms the cache
        _time_job(paths[:1], job, options, engine)
    half = len(paths) // 2
    short = _time_job(paths[:half], job, options, engine)
    full = _time_job(paths, job, options, engine)
    return {"wall": full, "rate": len(paths) / full, "steady": half / max(full - short, 1e-9)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=96, help="2N: jobs of N and 2N images are timed")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--model", help="a real captioner folder (default: the tiny random BLIP)")
    parser.add_argument("--wide", type=int, default=0,
                        help="use the tiny BLIP widened to this many units (e.g. 512): enough work per image that "
                             "Ray's per-batch cost can be compared with it (the 32-wide tiny BLIP takes ~1 ms)")
    args = parser.parse_args()
    _pack()
    import ray

    from llm_assist.core.captioning import CaptionSettings
    from llm_assist.core.dataset_job import CaptionJob
    from llm_assist.core.dataset_run import RayOptions
    from llm_assist.core.tiny_models import build_tiny_models

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.model:
            job_model, models_root = str(Path(args.model).resolve()), ""
        else:
            build_tiny_models(tmp / "models")
            job_model, models_root = "tiny-blip", str(tmp / "models")
            if args.wide:
                job_model = build_wide_blip(tmp / "models" / "LLM" / "tiny-blip", tmp / "models" / "LLM" / "wide-blip",
                                            args.wide).name
        settings = CaptionSettings(max_new_tokens=args.tokens, batch_size=args.batch_size)
        job = CaptionJob(model=job_model, models_root=models_root, settings=settings)
        paths = _write_images(tmp / "images", args.images)
        cpus = os.cpu_count() or 1
        print(f"{job_model}: {args.images} images, batch {args.batch_size}, {args.tokens} new tokens, {cpus} CPUs")
        rows = {"local": _measure(paths, job, RayOptions(batch_size=args.batch_size), "local")}
        ray.init(num_cpus=max(2, cpus), include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1"}})
        try:
            for workers in (1, 2):
                options = RayOptions(workers=workers, batch_size=args.batch_size, cpus_per_worker=max(1, cpus // workers))
                rows[f"ray x{workers}"] = _measure(paths, job, options, "ray")
        finally:
            ray.shutdown()
    print(f"{'engine':<10} {'wall s (2N)':>12} {'img/s (job)':>12} {'img/s (marginal)':>17}")
    for name, r in rows.items():
        print(f"{name:<10} {r['wall']:>12.2f} {r['rate']:>12.2f} {r['steady']:>17.2f}")
    overhead = rows["local"]["steady"] / rows["ray x1"]["steady"] - 1
    print(f"Ray overhead per image, 1 worker vs local (marginal rates): {overhead:+.1%} (goal < 10 %)")
    print(f"ray x2 / ray x1 marginal rate: {rows['ray x2']['steady'] / rows['ray x1']['steady']:.2f} "
          f"(2 workers share {cpus} cores here)")
    per_worker = rows["ray x1"]["steady"]
    print("planned, one worker per GPU: " + ", ".join(f"{n} GPUs ~ {per_worker * n:.0f} img/s" for n in (1, 2, 4, 8))
          + " (per-worker rate measured here x N; measure a GPU worker's rate with --model on the GPU)")


if __name__ == "__main__":
    main()
