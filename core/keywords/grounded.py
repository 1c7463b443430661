"""Image-grounded keywords: candidate phrases of the caption ranked by how well they match the
image itself (CLIP text tower of the encoder that made the LLMA_FEATURES, prompt
"a photo of {phrase}"), blended with the statistical score of the phrase.

score = (1 - image_weight) * statistical + image_weight * image, where ``image`` is the
phrase's image similarity min-max scaled over the candidates (0..1) and ``statistical`` is the
model-free extractor's score (0 for candidates it did not rank). The blend keeps the ranking
sensible when the encoder is weak (or random): what the text says still counts.
"""
from __future__ import annotations

from .candidates import candidate_phrases

PROMPT = "a photo of {phrase}"


def check_features_match(features, encoder) -> None:
    """Features must come from the same encoder whose text tower ranks the phrases."""
    dim = int(features.embeddings.shape[-1])
    probe = encoder.encode_texts(["a photo"])
    if int(probe.shape[-1]) != dim:
        raise ValueError(
            f"features have dimension {dim} (from {features.model or 'an unknown encoder'}) but image_encoder "
            f"{getattr(encoder, 'name', '?')} gives {int(probe.shape[-1])}: connect the same image encoder "
            "that made the features (Encode Image) to Extract Keywords"
        )


def rank_grounded(
    caption: str,
    image_embedding,
    encoder,
    statistical_scores: dict[str, float],
    *,
    top_k: int = 8,
    max_words: int = 3,
    language: str = "english",
    keep_colors: bool = True,
    keep_counts: bool = True,
    image_weight: float = 0.5,
) -> list[tuple[str, float]]:
    """(phrase, score) best first for one caption and one image embedding row [D]."""
    if not 0.0 <= image_weight <= 1.0:
        raise ValueError(f"image_weight must be in 0..1, got {image_weight}")
    phrases = candidate_phrases(caption, max_words=max_words, language=language,
                                keep_colors=keep_colors, keep_counts=keep_counts)
    for phrase in statistical_scores:  # phrases the statistical extractor found are candidates too
        if phrase not in phrases:
            phrases.append(phrase)
    if not phrases or top_k <= 0:
        return []
    import torch

    text = encoder.encode_texts([PROMPT.format(phrase=p) for p in phrases])
    row = torch.as_tensor(image_embedding, dtype=text.dtype).reshape(-1)
    sims = (text @ row).tolist()
    lo, hi = min(sims), max(sims)
    spread = hi - lo
    image = [(s - lo) / spread if spread > 1e-9 else 0.5 for s in sims]
    scored = []
    for i, phrase in enumerate(phrases):
        stat = float(statistical_scores.get(phrase, 0.0))
        score = (1.0 - image_weight) * stat + image_weight * image[i]
        scored.append((phrase, min(1.0, max(0.0, score)), i))
    scored.sort(key=lambda item: (-item[1], item[2]))
    return [(p, s) for p, s, _ in scored[:top_k]]
