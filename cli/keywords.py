"""``keywords``: captions on stdin (one a line), one JSON list of [phrase, score] per line on stdout,
streamed (each line is written as soon as it is done; a failing line gives ``[]`` and an error
record on stderr, and the exit code 1).

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


EMBEDDING_CHUNK = 32  # captions per encoder call in the embedding method (output streams per chunk)


def _lines(stream):
    """(1-based line number, caption) as the lines arrive."""
    for number, line in enumerate(stream, 1):
        yield number, line.rstrip("\r\n")


def _statistical(lines, args):
    """(line number, phrases, error) per line, one line at a time."""
    from ..core.keywords.statistical import extract, gc_paused

    with gc_paused():
        for number, caption in lines:
            try:
                yield number, extract(caption, top_k=args.top_k, max_words=args.max_words,
                                      language=args.language, min_score=args.min_score), None
            except Exception as exc:  # noqa: BLE001 - reported per line; the batch goes on
                yield number, [], exc


def _embedding(lines, args):
    """(line number, phrases, error) per line, ``EMBEDDING_CHUNK`` lines per encoder call; a chunk
    that fails is retried line by line so only the failing lines are lost."""
    try:
        from ..core.keywords.embedding import extract_embedding
    except ImportError as exc:
        raise ValueError(
            f"--method embedding is not available ({exc}); use --method statistical, or install the "
            "embedding keyword module (core/keywords/embedding.py)") from exc
    if args.models:
        from ..core import host

        host.set_models_root(args.models)

    def run(captions):
        found = extract_embedding(captions, top_k=args.top_k, model=args.encoder,
                                  max_words=args.max_words, language=args.language)
        return [[(str(p), float(s)) for p, s in phrases if float(s) >= args.min_score] for phrases in found]

    worked = []

    def flush(chunk):
        todo = [(n, c) for n, c in chunk if c.strip()]
        try:
            found = dict(zip((n for n, _ in todo), run([c for _, c in todo]))) if todo else {}
            worked.append(True)
        except ValueError:
            if not worked:
                raise  # the first call: a wrong --encoder / --models, the same for every line
            found = None
        except Exception:  # noqa: BLE001
            found = None
        if found is None:  # find the failing lines one by one
            found = {}
            for n, c in todo:
                try:
                    found[n] = run([c])[0]
                except Exception as exc:  # noqa: BLE001
                    found[n] = exc
        for n, _ in chunk:
            value = found.get(n, [])
            yield (n, [], value) if isinstance(value, BaseException) else (n, value, None)

    chunk = []
    for item in lines:
        chunk.append(item)
        if len(chunk) == EMBEDDING_CHUNK:
            yield from flush(chunk)
            chunk = []
    if chunk:
        yield from flush(chunk)


def command(args) -> int:
    """Stream: one JSON line per input line, written as soon as that line is done. A line that
    fails gives ``[]`` on stdout and a JSON error record ``{"line": N, "error": ...}`` on stderr;
    the exit code is 1 when any line failed."""
    import os

    _check(args)
    if args.method == "embedding":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        rows = _embedding(_lines(sys.stdin), args)
    else:
        rows = _statistical(_lines(sys.stdin), args)
    out, err = sys.stdout, sys.stderr
    done = failed = 0
    for number, phrases, error in rows:
        done += 1
        if error is not None:
            failed += 1
            err.write(json.dumps({"line": number, "error": f"{type(error).__name__}: {error}"},
                                 ensure_ascii=False) + "\n")
            err.flush()
        out.write(json.dumps([[p, round(float(s), 4)] for p, s in phrases], ensure_ascii=False) + "\n")
        out.flush()
    log.debug("keywords: %d captions with method %s, %d failed", done, args.method, failed)
    if failed:
        log.error("keywords: %d of %d lines failed (empty lists written for them; see the error records)",
                  failed, done)
        return 1
    return 0
