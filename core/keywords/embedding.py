"""KeyBERT-style keyword extraction: candidate phrases ranked by cosine similarity to the
caption, picked with Maximal Marginal Relevance (MMR) so the list is not five variants of one
phrase.

The text encoder is anything with ``encode_texts(list[str]) -> [N, D]`` L2-normalised rows: the
text tower of an LLMA_IMAGE_ENCODER (core.image_encoder.ImageEncoder), or a sentence-embedding
folder under models/text_encoders loaded here (AutoModel + AutoTokenizer, mean pooling, L2 norm).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from .. import hf_loading, host
from .. import model_cache
from ..model_cache import MODEL_CACHE, BoundedDict
from .candidates import candidate_phrases

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class SentenceEncoder:
    """A sentence-embedding model: mean-pooled last hidden states, L2-normalised."""

    model: Any
    tokenizer: Any
    name: str
    device: Any
    max_length: int = 256
    _cache: dict = field(default_factory=lambda: BoundedDict(4096), repr=False)  # CPU rows, dies with the encoder

    def encode_texts(self, texts: list[str], batch_size: int = 64):
        import torch

        texts = [str(t) for t in texts]
        rows = {t: self._cache[t] for t in dict.fromkeys(texts) if t in self._cache}
        missing = [t for t in dict.fromkeys(texts) if t not in rows]
        if missing:
            model_cache.prepare(self)  # reload if ComfyUI unloaded it; load through its memory manager
        with torch.inference_mode():
            for start in range(0, len(missing), batch_size):
                host.check_interrupt()
                chunk = missing[start:start + batch_size]
                inputs = self.tokenizer(chunk, padding=True, truncation=True, max_length=self.max_length,
                                        return_tensors="pt")
                inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
                hidden = self.model(**inputs).last_hidden_state.float()
                mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                pooled = torch.nn.functional.normalize(pooled, dim=-1).cpu()
                for text, row in zip(chunk, pooled):
                    self._cache[text] = rows[text] = row
        if not texts:
            return torch.zeros((0, int(getattr(self.model.config, "hidden_size", 0) or 0)))
        return torch.stack([rows[t] for t in texts])


def load_text_encoder(name: str, options: hf_loading.LoadOptions = hf_loading.LoadOptions()) -> SentenceEncoder:
    """Load (or fetch from MODEL_CACHE) a sentence-embedding folder from models/text_encoders."""
    source = hf_loading.resolve_source("text_encoders", name, options.allow_download)
    device, dtype, key = hf_loading.plan_load("text_encoder", source, options)

    def load():
        from transformers import AutoModel, AutoTokenizer

        model, tokenizer = hf_loading.from_pretrained_pair(AutoModel, AutoTokenizer, source, options, dtype, device)
        model = hf_loading.place_and_quantize(model, options, device, dtype)
        max_length = min(int(getattr(tokenizer, "model_max_length", 256) or 256), 512)
        return SentenceEncoder(model, tokenizer, source.rstrip("/").split("/")[-1], device, max_length)

    return MODEL_CACHE.get_or_load(key, load, keep_loaded=options.keep_loaded)


def mmr(doc, candidates, top_k: int, diversity: float = 0.5) -> list[int]:
    """Indices of ``top_k`` rows of ``candidates`` by Maximal Marginal Relevance.

    ``doc`` [D] and ``candidates`` [N, D] are L2-normalised; ``diversity`` 0 ranks by
    similarity alone, 1 by dissimilarity to what was already picked alone.
    """
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be in 0..1, got {diversity}: 0 = pure relevance, 1 = pure novelty")
    n = int(candidates.shape[0])
    if n == 0 or top_k <= 0:
        return []
    relevance = (candidates @ doc).tolist()
    pair = (candidates @ candidates.T).tolist()
    picked = [max(range(n), key=lambda i: (relevance[i], -i))]
    while len(picked) < min(top_k, n):
        best, best_value = -1, None
        for i in range(n):
            if i in picked:
                continue
            redundancy = max(pair[i][j] for j in picked)
            value = (1.0 - diversity) * relevance[i] - diversity * redundancy
            if best_value is None or value > best_value + 1e-12:
                best, best_value = i, value
        picked.append(best)
    return picked


def rank_embedding(
    caption: str,
    encoder,
    *,
    top_k: int = 8,
    diversity: float = 0.5,
    max_words: int = 3,
    language: str = "english",
    keep_colors: bool = True,
    keep_counts: bool = True,
) -> list[tuple[str, float]]:
    """(phrase, score) best first; score = cosine similarity to the caption clipped to 0..1."""
    phrases = candidate_phrases(caption, max_words=max_words, language=language,
                                keep_colors=keep_colors, keep_counts=keep_counts)
    if not phrases or top_k <= 0:
        return []
    emb = encoder.encode_texts([caption.strip()] + phrases)
    doc, cands = emb[0], emb[1:]
    picked = mmr(doc, cands, top_k, diversity)
    sims = (cands @ doc).tolist()
    out = [(phrases[i], min(1.0, max(0.0, float(sims[i])))) for i in picked]
    return sorted(out, key=lambda item: -item[1])


def resolve_encoder(model: str | None = None, encoder=None):
    """The encoder to use: a given one, else a folder from models/text_encoders or models/clip_vision."""
    if encoder is not None:
        return encoder
    if not model:
        raise ValueError("no text encoder: pass encoder= or model= (a folder in models/text_encoders or models/clip_vision)")
    for kind in ("text_encoders", "clip_vision"):
        try:
            host.resolve_model(kind, model)
        except (FileNotFoundError, ValueError):
            continue
        if kind == "clip_vision":
            from ..image_encoder import load_image_encoder

            return load_image_encoder(model)
        return load_text_encoder(model)
    return load_text_encoder(model)  # raises the loader's clear "not found" error


def extract_embedding(
    captions: list[str] | str,
    *,
    top_k: int = 8,
    model: str | None = None,
    encoder=None,
    diversity: float = 0.5,
    max_words: int = 3,
    language: str = "english",
    keep_colors: bool = True,
    keep_counts: bool = True,
) -> list[list[tuple[str, float]]]:
    """One ranked (phrase, score) list per caption, with one encoder loaded once."""
    if isinstance(captions, str):
        captions = [captions]
    enc = resolve_encoder(model, encoder)
    return [rank_embedding(c or "", enc, top_k=top_k, diversity=diversity, max_words=max_words,
                           language=language, keep_colors=keep_colors, keep_counts=keep_counts)
            for c in captions]
