"""Soak: N consecutive headless runs of the variation workflow in one process (issue 7).

    python bench/soak.py [--runs 200] [--warmup 10] [--models DIR] [--workflow FILE]

Every run really executes (runner cache off) with the tiny models (built into a temp folder
unless --models is given). Prints RSS after warm-up and at the end (VmRSS from
/proc/self/status), the model cache's entries / bytes / limit, the distinct output-image hashes
(1 = the same seed gave the same image every time) and the time per run. The default cache limit
(3 MB) is below the ~6 MB of models the workflow uses, so every run evicts and reloads models:
the soak shows that eviction frees what it drops. Exit 1 when RSS grew 50 MB or more after
warm-up, the cache went over its limit, a limit below the models' size evicted nothing, or the
outputs differed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

REPO = Path(__file__).resolve().parent.parent
RSS_LIMIT_MB = 50.0


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def cheap_sets(workflow: Path) -> list[str]:
    """64 px, 2 steps, short captions / expansions: the soak measures leaks, not speed."""
    data = json.loads(workflow.read_text(encoding="utf-8"))
    want = {"LLMAssistGenerate": ["steps=2", "width=64", "height=64"],
            "LLMAssistCaptionImage": ["max_new_tokens=12"],
            "LLMAssistExpandPrompt": ["max_new_tokens=12"]}
    nodes = data["nodes"] if "nodes" in data else [{"id": k, "type": v["class_type"]} for k, v in data.items()]
    return [f"{n['id']}.{item}" for n in nodes for item in want.get(n["type"], [])]


def image_hash(files) -> str:
    from PIL import Image

    digest = hashlib.sha256()
    for path in sorted(Path(f) for f in files if str(f).endswith(".png")):
        with Image.open(path) as im:
            digest.update(im.convert("RGB").tobytes())
        path.unlink()
    return digest.hexdigest()[:16]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--models", type=Path, help="tiny models folder (default: build one in a temp folder)")
    parser.add_argument("--workflow", type=Path, default=REPO / "example_workflows" / "variation.json")
    parser.add_argument("--cache-limit-mb", type=float, default=3.0,
                        help="model cache limit for the soak (the workflow's tiny models need about 6 MB, "
                             "the largest 4.5 MB: 3 MB makes every run evict; 0 = no limit)")
    args = parser.parse_args(argv)

    from llm_assist.core import host
    from llm_assist.core.model_cache import MODEL_CACHE

    MODEL_CACHE.limit_bytes = int(args.cache_limit_mb * 1e6)
    from llm_assist.core.sample_images import write_example_images
    from llm_assist.runner import run_workflow
    from llm_assist.runner.tiny_sets import tiny_model_sets

    work = Path(tempfile.mkdtemp(prefix="llma-soak-"))
    models = args.models
    if models is None:
        from llm_assist.core.tiny_models import build_tiny_models

        models = work / "models"
        t0 = time.perf_counter()
        build_tiny_models(models)
        print(f"built tiny models in {time.perf_counter() - t0:.1f} s")
    host.set_models_root(models)
    inp, out = work / "input", work / "output"
    write_example_images(inp, size=64)
    sets = tiny_model_sets(args.workflow) + cheap_sets(args.workflow)

    hashes, times, rss = [], [], []
    seen_keys: set = set()  # every model asked for: loads beyond one per key are reloads after eviction
    asked = MODEL_CACHE.get_or_load

    def get_or_load(key, *a, **kw):
        seen_keys.add(key)
        return asked(key, *a, **kw)

    MODEL_CACHE.get_or_load = get_or_load
    warm_rss = None
    start = time.perf_counter()
    for i in range(args.runs):
        t0 = time.perf_counter()
        result = run_workflow(args.workflow, sets=sets, output_dir=out, input_dir=inp, cache=False)
        times.append(time.perf_counter() - t0)
        hashes.append(image_hash(result.files))
        rss.append(rss_mb())
        if i + 1 == args.warmup:
            warm_rss = rss[-1]
        if (i + 1) % 25 == 0:
            print(f"run {i + 1}/{args.runs}: {times[-1] * 1000:.0f} ms, RSS {rss[-1]:.1f} MB", flush=True)
    total = time.perf_counter() - start
    stats = MODEL_CACHE.stats()
    warm_rss = warm_rss if warm_rss is not None else rss[0]
    growth = rss[-1] - warm_rss
    after = times[args.warmup:] or times
    limit = MODEL_CACHE.limit_bytes
    reloads = stats.loads - len(seen_keys)
    print(f"workflow          {args.workflow.name} ({len(sets)} --set items), {args.runs} runs in {total:.1f} s")
    print(f"time per run      first {times[0]:.2f} s, median after warm-up {sorted(after)[len(after) // 2]:.3f} s, "
          f"max {max(after):.3f} s")
    print(f"RSS               after warm-up ({args.warmup} runs) {warm_rss:.1f} MB, end {rss[-1]:.1f} MB, "
          f"peak {max(rss):.1f} MB, growth {growth:+.1f} MB (limit {RSS_LIMIT_MB:.0f} MB)")
    print(f"model cache       {stats.entries} entries, {stats.bytes / 1e6:.1f} MB, limit "
          f"{'none' if not limit else f'{limit / 1e6:.0f} MB'}, loads {stats.loads}, hits {stats.hits}, "
          f"{len(seen_keys)} distinct models, {reloads} reloads after eviction")
    print(f"outputs           {len(set(hashes))} distinct image hash(es) over {len(hashes)} runs: {sorted(set(hashes))[:3]}")
    evicted_if_binding = reloads > 0 or not limit or limit >= 6e6
    within = not limit or stats.bytes <= limit or stats.entries == 1  # one model larger than the limit stays
    ok = growth < RSS_LIMIT_MB and within and evicted_if_binding and len(set(hashes)) == 1
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
