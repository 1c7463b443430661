"""Peak memory of the dataset captioning workflow for 10 vs 100 photos (issue 15).

    python bench/dataset_memory_bench.py [--counts 10,100] [--old-counts 10,30] [--megapixels 3]
                                         [--models DIR]

Generates N JPEG photos of ~3 MP (2000 x 1500, smooth content plus noise, like camera pictures)
in a temporary ComfyUI-style input folder, then runs ``example_workflows/dataset_captioning.json``
headless with the tiny models (captioner: tiny BLIP), one fresh process per run, and reports the
process's peak RSS (VmHWM) and its growth over the RSS right before the run:

* ``files``: the example as committed: Load Image Folder decodes nothing (load_images off) and
  Caption Image reads ``batch_size`` images at a time from the files output, downscaled to
  ``max_side`` 1024 on load. The peak should not depend on N.
* ``images`` (``--old-counts``): the previous wiring for comparison: every image decoded at full
  size (max_side 0) into the images output and held as float32 (about 36 MB per 3 MP photo).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = REPO / "example_workflows" / "dataset_captioning.json"

_CHILD = r"""
import json, os, sys, time
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
torch.set_num_threads(1)
from llm_assist.core import host
from llm_assist.runner.execute import run_workflow
from llm_assist.runner.tiny_sets import tiny_model_sets
from llm_assist.runner.workflow import load_workflow

workflow, models, inputs, output, arm = sys.argv[1:6]

def kb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

host.set_models_root(models)
sets = tiny_model_sets(workflow)
if arm == "images":  # the old wiring: every image decoded at full size, the list into Caption Image
    from llm_assist.runner.execute import node_class_mappings
    from llm_assist.runner.workflow import to_api_prompt, apply_sets
    wf = load_workflow(workflow)
    classes = node_class_mappings(None, {n["type"] for n in wf.data["nodes"]})
    prompt = apply_sets(to_api_prompt(wf, classes), sets, classes)
    folder = next(k for k, n in prompt.items() if n["class_type"] == "LLMAssistLoadImageFolder")
    caption = next(k for k, n in prompt.items() if n["class_type"] == "LLMAssistCaptionImage")
    prompt[folder]["inputs"].update(load_images=True, max_side=0)
    prompt[caption]["inputs"].pop("image_files")
    prompt[caption]["inputs"]["image"] = [folder, 0]
    workflow, sets = prompt, []
before = kb("VmRSS")
start = time.perf_counter()
result = run_workflow(workflow, sets=sets, output_dir=output, input_dir=inputs, cache=False)
seconds = time.perf_counter() - start
texts = [t for ui in result.outputs.values() for t in ui.get("text", [])]
print(json.dumps({"before": before, "peak": kb("VmHWM"), "seconds": seconds, "texts": texts}))
"""


def make_photos(folder: Path, count: int, megapixels: float = 3.0) -> int:
    """``count`` JPEGs of about ``megapixels`` MP (4:3); returns the bytes written."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    height = int(round(width * 3 / 4))
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    total = 0
    for i in range(count):
        phase = rng.uniform(0, 6.28, 3)
        base = np.stack([127 + 100 * np.sin(x / (150 + 20 * c) + y / (230 + 30 * i % 7) + phase[c]) for c in range(3)], -1)
        noise = rng.normal(0, 12, base.shape).astype(np.float32)
        image = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
        path = folder / f"photo_{i:04d}.jpg"
        image.save(path, quality=88)
        total += path.stat().st_size
    return total


def run_one(models: Path, count: int, arm: str, megapixels: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="llma-dataset-bench-") as tmp:
        tmp = Path(tmp)
        make_photos(tmp / "input" / "dataset", count, megapixels)
        res = subprocess.run([sys.executable, "-c", _CHILD, str(WORKFLOW), str(models), str(tmp / "input"),
                              str(tmp / "output"), arm], capture_output=True, text=True, cwd=REPO.parent,
                             timeout=7200)
        if res.returncode != 0:
            raise RuntimeError(f"{arm} x {count} failed: {res.stderr[-2000:]}")
        data = json.loads(res.stdout.strip().splitlines()[-1])
        captions = len(list((tmp / "input" / "dataset").glob("*.txt")))
    data.update(count=count, arm=arm, captions=captions)
    return data


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="10,100", help="photo counts for the committed workflow (files)")
    ap.add_argument("--old-counts", default="10,30", help="photo counts for the old full-size wiring ('' = skip)")
    ap.add_argument("--megapixels", type=float, default=3.0)
    ap.add_argument("--models", type=Path, default=None, help="tiny models folder (default: build one)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="llma-tiny-") as tmp:
        models = args.models
        if models is None:
            from llm_assist.core.tiny_models import build_tiny_models

            models = Path(tmp) / "models"
            t0 = time.perf_counter()
            build_tiny_models(models)
            print(f"built tiny models in {time.perf_counter() - t0:.1f} s")
        runs = [("files", int(n)) for n in args.counts.split(",") if n.strip()]
        runs += [("images", int(n)) for n in args.old_counts.split(",") if n.strip()]
        print(f"{'arm':7s} {'photos':>6s} {'MP':>4s} {'RSS before':>11s} {'peak RSS':>9s} {'growth':>8s} "
              f"{'captions':>8s} {'seconds':>8s}")
        rows = []
        for arm, count in runs:
            r = run_one(models, count, arm, args.megapixels)
            rows.append(r)
            print(f"{arm:7s} {count:6d} {args.megapixels:4.1f} {r['before'] / 2**20:9.0f}MB {r['peak'] / 2**20:7.0f}MB "
                  f"{(r['peak'] - r['before']) / 2**20:6.0f}MB {r['captions']:8d} {r['seconds']:8.1f}", flush=True)
        for arm in ("files", "images"):
            mine = [r for r in rows if r["arm"] == arm]
            if len(mine) >= 2:
                a, b = mine[0], mine[-1]
                per = ((b["peak"] - b["before"]) - (a["peak"] - a["before"])) / max(1, b["count"] - a["count"])
                print(f"{arm}: peak growth {a['count']} -> {b['count']} photos: "
                      f"{(a['peak'] - a['before']) / 2**20:.0f} MB -> {(b['peak'] - b['before']) / 2**20:.0f} MB "
                      f"({per / 2**20:+.1f} MB per extra photo)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
