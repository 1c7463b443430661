"""Candidate key phrases for the model-based keyword methods (embedding, image-grounded).

KeyBERT-style: word n-grams of 1..``max_words`` words taken inside punctuation-free
segments of the caption, with no stopword, light verb or adverb at either edge (so "black dog"
and "dog running through snow" are candidates, "the dog" and "dog is" are not). Colour words and
counts may sit at the left edge; auxiliaries and determiners may not sit inside ("two red balls") when ``keep_colors`` / ``keep_counts`` are on;
off, they are treated like stopwords. Deterministic: candidates come back ordered by frequency,
then first position.
"""
from __future__ import annotations

import re
from collections import Counter

MAX_CAPTION_WORDS = 2000  # longer captions are cut: candidates beyond are rarely needed
MAX_PHRASE_CHARS = 60

_WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*", re.UNICODE)
_SEGMENT_BREAK = re.compile(r"[.,;:!?()\[\]{}\"“”«»/|\n\r\t]+")

_FALLBACK_STOPWORDS = frozenset(
    "a an the and or but of at by for with without in on to from into onto over under is are was "
    "were be been being am has have had do does did it its this that these those there here which "
    "who whom what while as some any each very just also not no".split()
)
_FALLBACK_COLOURS = frozenset("black white red blue green yellow orange purple pink brown gray grey".split())
_FALLBACK_NUMBERS = frozenset("one two three four five six seven eight nine ten several many".split())


def _lexicon():
    """Word lists shared with the statistical extractor (fallbacks when it is absent)."""
    try:
        from . import lexicon
    except ImportError:  # the statistical extractor's word lists are not installed
        return {"english": _FALLBACK_STOPWORDS}, _FALLBACK_COLOURS, _FALLBACK_NUMBERS, frozenset(), frozenset()
    edge = frozenset(getattr(lexicon, "LIGHT_VERBS", frozenset())) | frozenset(getattr(lexicon, "ADVERBS", frozenset()))
    inner = frozenset(getattr(lexicon, "AUXILIARIES", frozenset())) | frozenset(getattr(lexicon, "DETERMINERS", frozenset()))
    return lexicon.STOPWORDS, lexicon.COLOURS, lexicon.NUMBERS, edge, inner


def supported_languages() -> tuple[str, ...]:
    return tuple(_lexicon()[0])


def stopwords(language: str = "english", *, keep_colors: bool = True, keep_counts: bool = True) -> frozenset[str]:
    """Words that may not start or end a candidate phrase, for ``language``."""
    table, colours, numbers, edge, _ = _lexicon()
    key = (language or "english").strip().lower()
    if key not in table:
        raise ValueError(
            f"language must be one of {sorted(table)}, got {language!r}: pick a supported stopword language"
        )
    words = set(table[key]) | (set(edge) if key == "english" else set())
    if keep_counts:
        words -= set(numbers)
    else:
        words |= set(numbers)
    if keep_colors:
        words -= set(colours)
    else:
        words |= set(colours)
    return frozenset(words)


def _is_count(word: str, numbers: frozenset[str]) -> bool:
    return word.isdigit() or word in numbers


def candidate_phrases(
    caption: str,
    *,
    max_words: int = 3,
    language: str = "english",
    keep_colors: bool = True,
    keep_counts: bool = True,
    max_candidates: int = 200,
) -> list[str]:
    """Lower-cased candidate phrases of ``caption``; empty for empty or stopword-only text."""
    if max_words < 1:
        raise ValueError(f"max_words must be at least 1, got {max_words}: use 1 for single words")
    text = (caption or "").strip().lower()
    if not text:
        return []
    stop = stopwords(language, keep_colors=keep_colors, keep_counts=keep_counts)
    _, colours, numbers, _, inner = _lexicon()
    if (language or "english").strip().lower() != "english":
        inner = frozenset()
    counts: Counter[str] = Counter()
    first: dict[str, int] = {}
    position = 0
    for segment in _SEGMENT_BREAK.split(text):
        words = _WORD.findall(segment)
        if position + len(words) > MAX_CAPTION_WORDS:
            words = words[: max(0, MAX_CAPTION_WORDS - position)]
        for i in range(len(words)):
            for n in range(1, max_words + 1):
                gram = words[i:i + n]
                if len(gram) < n:
                    break
                if gram[0] in stop or gram[-1] in stop:
                    continue
                # a phrase must end in content: not a bare colour/count unless it is one word
                if n > 2 and any(w in inner for w in gram[1:-1]):
                    continue  # "dog is running", "ball the dog": not a noun-ish chunk
                if n > 1 and (gram[-1] in colours or _is_count(gram[-1], numbers)):
                    continue
                if not keep_counts and any(_is_count(w, numbers) for w in gram):
                    continue
                if not keep_colors and any(w in colours for w in gram):
                    continue
                phrase = " ".join(gram)
                if len(phrase) > MAX_PHRASE_CHARS:
                    continue
                counts[phrase] += 1
                first.setdefault(phrase, position + i)
        position += len(words)
        if position >= MAX_CAPTION_WORDS:
            break
    ranked = sorted(counts, key=lambda p: (-counts[p], first[p], p))
    return ranked[:max_candidates]
