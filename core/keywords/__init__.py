"""Keyword extraction: one entry point over the four methods.

* ``statistical`` - model-free (core.keywords.statistical);
* ``embedding`` - KeyBERT-style candidates ranked by similarity to the caption, MMR diversity
  (a text encoder: an image encoder's text tower or a models/text_encoders folder);
* ``image-grounded`` - candidates ranked by similarity to the image features, blended with the
  statistical score (the image encoder that made the features);
* ``llm`` - a language model asked for a JSON list; unreadable output falls back to statistical
  with source "statistical-fallback".
"""
from __future__ import annotations

import logging

from ..sockets import Keyword, Keywords

log = logging.getLogger(__name__)

METHODS = ("statistical", "embedding", "image-grounded", "llm")


def _statistical(caption: str, **kw) -> list[tuple[str, float]]:
    from .statistical import extract

    return extract(caption, **kw)


def _one_row(features):
    """The single image-embedding row [D] from Features (1 row) or a tensor [D] / [1, D]."""
    emb = getattr(features, "embeddings", features)
    shape = tuple(getattr(emb, "shape", ()))
    if len(shape) == 2 and shape[0] == 1:
        return emb[0]
    if len(shape) == 1:
        return emb
    raise ValueError(
        f"features hold {shape[0] if shape else '?'} images but one caption was given: pass one caption "
        "per image (Extract Keywords pairs caption i with image i)"
    )


def _require(value, method: str, name: str, what: str) -> None:
    if value is None:
        raise ValueError(f"method {method!r} needs {what}: connect the {name!r} input, or pick method 'statistical'")


def extract_keywords(
    caption: str,
    method: str = "statistical",
    *,
    top_k: int = 8,
    min_score: float = 0.0,
    max_words: int = 3,
    language: str = "english",
    keep_colors: bool = True,
    keep_counts: bool = True,
    encoder=None,
    features=None,
    language_model=None,
    seed: int = 0,
    diversity: float = 0.5,
) -> Keywords:
    """Ranked keywords of one caption (best first, at most ``top_k``, scores >= ``min_score``)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if max_words < 1:
        raise ValueError(f"max_words must be at least 1, got {max_words}")
    if not 0.0 <= min_score <= 1.0:
        raise ValueError(f"min_score must be in 0..1, got {min_score}")
    if method in ("embedding", "image-grounded"):
        _require(encoder, method, "image_encoder", "a text encoder (Load Image Encoder)")
    if method == "image-grounded":
        _require(features, method, "features", "the image's features (Encode Image)")
    if method == "llm":
        _require(language_model, method, "language_model", "a language model (Load Language Model)")
    caption = "" if caption is None else str(caption)
    if not caption.strip():
        return Keywords((), caption)
    common = dict(max_words=max_words, language=language, keep_colors=keep_colors, keep_counts=keep_counts)
    source = method
    if method == "statistical":
        ranked = _statistical(caption, top_k=top_k, min_score=min_score, **common)
    elif method == "embedding":
        from .embedding import rank_embedding

        ranked = rank_embedding(caption, encoder, top_k=top_k, diversity=diversity, **common)
    elif method == "image-grounded":
        from .grounded import check_features_match, rank_grounded

        check_features_match(features, encoder)
        stat = {p.lower(): s for p, s in _statistical(caption, top_k=50, min_score=0.0, **common)}
        ranked = rank_grounded(caption, _one_row(features), encoder, stat, top_k=top_k, **common)
    else:
        from .llm import extract_llm

        ranked = extract_llm(caption, language_model, top_k=top_k, max_words=max_words, seed=seed)
        if not ranked:
            source = "statistical-fallback"
            ranked = _statistical(caption, top_k=top_k, min_score=min_score, **common)
    items, seen = [], set()
    for text, score in ranked:
        text = " ".join(str(text).split())
        score = min(1.0, max(0.0, float(score)))
        if not text or text.lower() in seen or score < min_score:
            continue
        seen.add(text.lower())
        items.append(Keyword(text, score, source))
        if len(items) >= top_k:
            break
    return Keywords(tuple(items), caption)


__all__ = ["METHODS", "extract_keywords"]


def feature_rows(features_list) -> list:
    """Every image-embedding row of a list of Features (each [B, D]), as one-row Features."""
    rows = []
    for features in features_list or []:
        if features is None:
            continue
        emb = features.embeddings
        rows.extend(type(features)(emb[i:i + 1], features.model) for i in range(int(emb.shape[0])))
    return rows


def extract_keywords_batch(captions: list, method: str = "statistical", *, features=None, **options) -> list[Keywords]:
    """``extract_keywords`` for each caption, caption i paired with image i of ``features`` (a list
    of Features batches, joined in order; one row is shared by every caption)."""
    captions = [c if c is not None else "" for c in captions]
    rows = feature_rows(features if isinstance(features, list) else [features])
    if rows and len(rows) not in (1, len(captions)):
        raise ValueError(
            f"features hold {len(rows)} images but {len(captions)} captions came in: connect the features "
            "of the same images that were captioned (one caption per image)"
        )
    return [extract_keywords(text, method, features=rows[i if len(rows) > 1 else 0] if rows else None, **options)
            for i, text in enumerate(captions)]
