"""Compare Images (MSE / PSNR / SSIM) against scikit-image, side by side: time and peak memory.

    python bench/metrics_bench.py [--sizes 2048,4096] [--repeats 1]

Each measurement runs in a fresh process: two float32 RGB images of N x N (what ComfyUI hands a
node), then the peak-RSS counter is reset (``/proc/self/clear_refs``) and one call is timed:

* ``ours``: ``core.metrics.compare_images`` (MSE, PSNR and SSIM, float64 inside), on one thread
  like scikit-image; ``ours-mt`` with torch's default threads (ask for it with ``--arms``: on a
  machine whose cores are busy, torch's threads wait for each other and it is much slower);
* ``skimage``: ``structural_similarity`` (Gaussian sigma 1.5, as ours) + ``mean_squared_error`` +
  ``peak_signal_noise_ratio`` on the same float32 arrays (scikit-image then computes in float32);
* ``skimage-f64``: the same on float64 copies (the exact reference our values are tested against;
  the copies are made before the peak is reset).

Peak memory is the growth of VmHWM over the input images, also given as a multiple of the input
(both images' bytes). Linux only (``/proc``).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_CHILD = r"""
import json, sys, time
import torch
n, which = int(sys.argv[1]), sys.argv[2]
if which != "ours-mt":
    torch.set_num_threads(1)  # scikit-image (scipy.ndimage) runs on one core

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

g = torch.Generator().manual_seed(0)
a = torch.rand(1, n, n, 3, generator=g)
b = torch.rand(1, n, n, 3, generator=g).mul_(0.1).add_(a, alpha=0.9)
from llm_assist.core import metrics
import numpy as np
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity
x, y = a[0].numpy(), b[0].numpy()
if which == "skimage-f64":
    x, y = x.astype(np.float64), y.astype(np.float64)
input_bytes = a.numel() * a.element_size() * 2
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = status("VmRSS")
start = time.perf_counter()
if which.startswith("ours"):
    r = metrics.compare_images(a, b)
    values = (r.mse[0], r.psnr[0], r.ssim[0])
else:
    s = structural_similarity(x, y, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
    values = (mean_squared_error(x, y), peak_signal_noise_ratio(x, y, data_range=1.0), s)
seconds = time.perf_counter() - start
peak = status("VmHWM") - base
print(json.dumps({"which": which, "n": n, "seconds": seconds, "peak_bytes": peak, "input_bytes": input_bytes,
                  "mse": float(values[0]), "psnr": float(values[1]), "ssim": float(values[2])}))
"""


def measure(n: int, which: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(n), which], capture_output=True, text=True,
                         cwd=REPO.parent, check=True, timeout=3600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2048,4096")
    ap.add_argument("--repeats", type=int, default=1, help="runs per arm; the fastest is shown")
    ap.add_argument("--arms", default="ours,skimage,skimage-f64")
    args = ap.parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    print(f"{'size':>6s} {'arm':12s} {'seconds':>8s} {'peak MB':>8s} {'x input':>8s} {'ssim':>18s} {'mse':>12s}")
    for n in [int(s) for s in args.sizes.split(",")]:
        rows = {}
        for which in arms:
            runs = [measure(n, which) for _ in range(max(1, args.repeats))]
            r = min(runs, key=lambda r: r["seconds"])
            r["peak_bytes"] = max(x["peak_bytes"] for x in runs)
            rows[which] = r
            print(f"{n:6d} {which:12s} {r['seconds']:8.2f} {r['peak_bytes'] / 2**20:8.0f} "
                  f"{r['peak_bytes'] / r['input_bytes']:8.2f} {r['ssim']:18.15f} {r['mse']:12.9f}", flush=True)
        if "ours" in rows:
            for other in [w for w in arms if w != "ours"]:
                o, s = rows[other], rows["ours"]
                print(f"{n:6d} ours vs {other}: time {s['seconds'] / o['seconds']:.2f}x, peak memory "
                      f"{s['peak_bytes'] / max(o['peak_bytes'], 1):.2f}x, |ssim diff| {abs(s['ssim'] - o['ssim']):.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
