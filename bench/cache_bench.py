"""Model cache benchmark (CPU): what a cache hit costs next to the load it saves.

    HF_HUB_OFFLINE=1 python bench/cache_bench.py [--repeats 200]

A hit is a dict lookup under a lock (moved here from a 10 ms wall-clock assert in the tests):
``hit_s`` is the median of ``repeats`` hits on the real loader path (load_language_model on
tiny-gpt2, which also resolves the folder and plans the load), ``load_s`` the median cold load
of the same model, and ``hit_over_load`` their ratio (goal <= 0.05). Prints one JSON object.
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
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args(argv)

    from llm_assist.core import hf_loading, host
    from llm_assist.core.language_model import load_language_model
    from llm_assist.core.model_cache import MODEL_CACHE, CacheKey, ModelCache
    from llm_assist.core.tiny_models import build_tiny_models

    with tempfile.TemporaryDirectory() as tmp:
        root = build_tiny_models(Path(tmp) / "models", only=["tiny-gpt2"])
        previous = host.set_models_root(root)
        try:
            options = hf_loading.LoadOptions(device="cpu")
            loads = []
            for _ in range(5):
                MODEL_CACHE.clear()
                t = time.perf_counter(); load_language_model("tiny-gpt2", options); loads.append(time.perf_counter() - t)
            hits = []
            for _ in range(args.repeats):
                t = time.perf_counter(); load_language_model("tiny-gpt2", options); hits.append(time.perf_counter() - t)
        finally:
            host.set_models_root(previous)
            MODEL_CACHE.clear()
    bare = ModelCache()
    key = CacheKey("x", "/m", "float32", "cpu")
    bare.get_or_load(key, object)
    lookups = []
    for _ in range(args.repeats):
        t = time.perf_counter(); bare.get_or_load(key, object); lookups.append(time.perf_counter() - t)
    load_s, hit_s = statistics.median(loads), statistics.median(hits)
    print(json.dumps({"load_s": load_s, "hit_s": hit_s, "hit_over_load": hit_s / load_s,
                      "bare_lookup_s": statistics.median(lookups), "hit_max_s": max(hits)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
