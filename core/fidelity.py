"""Keyword fidelity: how many of the source keywords a re-caption of the generated image brings back.

Matching works on *content-word stems*, pooled per side:

1. each keyword is lowercased, punctuation becomes a space, and it is split into words;
2. stop words (articles, prepositions, conjunctions, pronouns, "very", ...) and digits-only
   words are dropped;
3. each word goes through a light suffix-stripping stemmer (``stem``): ``ies`` -> ``y``,
   ``sses`` -> ``ss``, ``(s|x|z|ch|sh)es`` -> drop ``es``, plural ``s`` (not ``ss``/``us``/``is``),
   ``ied`` -> ``y``, ``ing`` / ``ed`` (undoubling a final double consonant: running -> run),
   then a final silent ``e`` (make / making -> mak);
4. precision = |source stems & caption stems| / |caption stems|, recall = ... / |source stems|,
   F1 their harmonic mean. Both sides empty: 1, 1, 1; one side empty: 0 where undefined.

So ["black dog", "snow"] vs ["dog", "white snow", "ball"]: source {black, dog, snow}, caption
{dog, whit(e), snow, ball}: matched {dog, snow}, P = 2/4, R = 2/3, F1 = 4/7. A phrase keyword
counts word by word, so "black dog" re-captioned as "dog" loses the colour, as it should.
The report lists matched / missing / extra words (the first surface form of each stem) and the
share of each keyword's stems that the other side covers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

STOP_WORDS = frozenset(
    "a an the and or but nor of in on at to for from by with without into onto over under "
    "above below near up down out off about as is are was were be been being it its this that "
    "these those there here some any very much many more most few lot lots one his her their "
    "our your my he she they we you i them him who which what while than then so such".split()
)
_PUNCT = re.compile(r"[^\w\s]|_")
_VOWELS = set("aeiouy")


def _undouble(word: str) -> str:
    if len(word) > 2 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        return word[:-1]
    return word


def stem(word: str) -> str:
    """Light English suffix stripper (see the module docstring for the rules)."""
    w = word.lower()
    if len(w) <= 3:
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif re.search(r"(?:[sxz]|ch|sh)es$", w):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    elif w.endswith("ied") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("ing") and len(w) > 5 and _VOWELS & set(w[:-3]):
        w = _undouble(w[:-3])
    elif w.endswith("ed") and len(w) > 4 and _VOWELS & set(w[:-2]):
        w = _undouble(w[:-2])
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    return w


def content_words(text: str) -> list[str]:
    """Lowercased words of ``text`` without punctuation, stop words or pure numbers."""
    words = _PUNCT.sub(" ", str(text).lower()).split()
    return [w for w in words if w not in STOP_WORDS and not w.isdigit()]


def _texts(keywords) -> list[str]:
    if keywords is None:
        return []
    if isinstance(keywords, str):
        return [t for t in (p.strip() for p in keywords.split(",")) if t]
    if hasattr(keywords, "texts"):
        return list(keywords.texts())
    return [getattr(k, "text", k) for k in keywords]


def _stems(texts: list[str]) -> dict[str, str]:
    """stem -> first surface word, in order of appearance."""
    out: dict[str, str] = {}
    for text in texts:
        for word in content_words(text):
            out.setdefault(stem(word), word)
    return out


def _coverage(texts: list[str], other: dict[str, str]) -> list[dict]:
    rows = []
    for text in texts:
        stems = {stem(w) for w in content_words(text)}
        share = len(stems & other.keys()) / len(stems) if stems else 0.0
        rows.append({"keyword": text, "covered": share})
    return rows


@dataclass(frozen=True)
class FidelityResult:
    precision: float
    recall: float
    f1: float
    matched: tuple[str, ...]
    missing: tuple[str, ...]
    extra: tuple[str, ...]
    source_keywords: tuple[dict, ...]  # {"keyword", "covered"} per source keyword
    caption_keywords: tuple[dict, ...]

    def as_dict(self) -> dict:
        return {
            "metric": "keyword_fidelity", "precision": self.precision, "recall": self.recall, "f1": self.f1,
            "matched": list(self.matched), "missing": list(self.missing), "extra": list(self.extra),
            "source_keywords": list(self.source_keywords), "caption_keywords": list(self.caption_keywords),
            "notes": ["matching on content-word stems pooled per side (lowercase, no punctuation or stop "
                      "words, light suffix stemmer); matched/missing/extra show each stem's first word"],
        }


def keyword_fidelity(source, caption) -> FidelityResult:
    """Precision / recall / F1 of ``caption`` keywords against ``source`` keywords (Keywords,
    lists of strings, or comma-separated text)."""
    src_texts, cap_texts = _texts(source), _texts(caption)
    src, cap = _stems(src_texts), _stems(cap_texts)
    matched = [s for s in src if s in cap]
    if not src and not cap:
        precision = recall = f1 = 1.0
    else:
        precision = len(matched) / len(cap) if cap else 0.0
        recall = len(matched) / len(src) if src else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return FidelityResult(
        precision=precision, recall=recall, f1=f1,
        matched=tuple(src[s] for s in matched),
        missing=tuple(src[s] for s in src if s not in cap),
        extra=tuple(cap[s] for s in cap if s not in src),
        source_keywords=tuple(_coverage(src_texts, cap)), caption_keywords=tuple(_coverage(cap_texts, src)),
    )
