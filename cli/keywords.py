"""``keywords``: captions on stdin (one a line), one JSON list of [phrase, score] per line on stdout.

The ``statistical`` method is pure Python and imports no torch (fast start); ``embedding``
ranks candidate phrases with a text/image encoder and is imported only when asked for.
"""
from __future__ import annotations

import json
import logging
import sys

log = logging.getLogger(__name__)

METHODS = ("statistical", "embedding")


def add_parser(sub, name: str, help_text: str) -> None:
    from ..core.keywords.lexicon import SUPPORTED_LANGUAGES

    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--method", choices=METHODS, default="statistical",
                   help="statistical: model-free, fast (default); embedding: rank phrases with an encoder")
    p.add_argument("--top-k", type=int, default=8, help="most phrases per caption (default 8)")
    p.add_argument("--max-words", type=int, default=3, help="most words per phrase; 1 = single words (default 3)")
    p.add_argument("--language", choices=SUPPORTED_LANGUAGES, default="english",
                   help="caption language for the statistical method's word lists (default english)")
    p.add_argument("--min-score", type=float, default=0.0, help="drop phrases scoring below this (0..1)")
    p.add_argument("--encoder", default=None,
                   help="embedding method: a folder under models/clip_vision or models/text_encoders (see --models)")
    p.add_argument("--models", default=None, help="models folder laid out like ComfyUI's models/ (embedding method)")


def _check(args) -> None:
    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}: use e.g. --top-k 8")
    if args.max_words < 1:
        raise ValueError(f"--max-words must be at least 1, got {args.max_words}: use 1 for single words")
    if not 0.0 <= args.min_score <= 1.0:
        raise ValueError(f"--min-score must be in 0..1, got {args.min_score}")


def _read_captions(stream) -> list[str]:
    return [line.rstrip("\r\n") for line in stream]


def _statistical(captions: list[str], args) -> list[list[tuple[str, float]]]:
    from ..core.keywords.statistical import extract_many

    return extract_many(captions, top_k=args.top_k, max_words=args.max_words, language=args.language,
                        min_score=args.min_score)


def _embedding(captions: list[str], args) -> list[list[tuple[str, float]]]:
    try:
        from ..core.keywords.embedding import extract_embedding
    except ImportError as exc:
        raise ValueError(
            f"--method embedding is not available ({exc}); use --method statistical, or install the "
            "embedding keyword module (core/keywords/embedding.py)") from exc
    if args.models:
        from ..core import host

        host.set_models_root(args.models)
    results = [[] for _ in captions]
    todo = [i for i, c in enumerate(captions) if c.strip()]
    if todo:
        found = extract_embedding([captions[i] for i in todo], top_k=args.top_k, model=args.encoder,
                                  max_words=args.max_words, language=args.language)
        for i, phrases in zip(todo, found):
            results[i] = [(str(p), float(s)) for p, s in phrases if float(s) >= args.min_score]
    return results


def command(args) -> int:
    import os

    _check(args)
    captions = _read_captions(sys.stdin)
    if args.method == "embedding":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        results = _embedding(captions, args)
    else:
        results = _statistical(captions, args)
    out = sys.stdout
    for phrases in results:
        out.write(json.dumps([[p, round(float(s), 4)] for p, s in phrases], ensure_ascii=False) + "\n")
    out.flush()
    log.debug("keywords: %d captions with method %s", len(captions), args.method)
    return 0
