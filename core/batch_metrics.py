"""Metrics over a batch or two runs: Diversity, Stability, CLIP Score. Each returns a small frozen
result whose ``as_dict()`` is the node's JSON report (the pixel comparisons live in core.metrics).
"""
from __future__ import annotations

from dataclasses import dataclass

from .metrics import (HIST_BINS, PIXEL_SIDE, broadcast_pair, colour_histogram, entropy_bits,
                      mean_pairwise_cosine_distance, pairwise_rmse, pixel_vendi, vendi_score)


@dataclass(frozen=True)
class DiversityResult:
    count: int
    pixel_vendi: float
    pixel_bandwidth: float
    mean_pixel_rmse: float
    histogram_entropy_bits: float
    per_image_histogram_entropy_bits: tuple[float, ...]
    feature_vendi: float = 0.0
    mean_cosine_distance: float = 0.0
    feature_model: str = ""
    feature_count: int | None = None
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        out = {"metric": "diversity", "count": self.count, "pixel_vendi": self.pixel_vendi,
               "pixel_bandwidth": self.pixel_bandwidth, "mean_pixel_rmse": self.mean_pixel_rmse,
               "histogram_entropy_bits": self.histogram_entropy_bits,
               "per_image_histogram_entropy_bits": list(self.per_image_histogram_entropy_bits),
               "feature_vendi": self.feature_vendi, "mean_cosine_distance": self.mean_cosine_distance,
               "feature_model": self.feature_model, "notes": list(self.notes)}
        if self.feature_count is not None:
            out["feature_count"] = self.feature_count
        return out


def diversity(images, features=None, bandwidth: float = 0.1) -> DiversityResult:
    """Diversity of an IMAGE batch (and optional ``Features`` rows from an encoder)."""
    import torch

    from .images import check_image

    images = check_image(images, "images").double()
    n = images.shape[0]
    hist = colour_histogram(images)
    rmse = pairwise_rmse(images)
    i, j = torch.triu_indices(n, n, offset=1)
    notes = [f"histogram: joint RGB {HIST_BINS}x{HIST_BINS}x{HIST_BINS} bins, entropy in bits of the "
             "whole batch pooled (max 9); per-image values alongside",
             f"pixel_vendi: Gaussian kernel on RMSE of {PIXEL_SIDE}px area-downsampled images"]
    pixel = dict(count=n, pixel_vendi=pixel_vendi(images, bandwidth), pixel_bandwidth=bandwidth,
                 mean_pixel_rmse=float(rmse[i, j].mean()) if n > 1 else 0.0,
                 histogram_entropy_bits=entropy_bits(hist.sum(0)),
                 per_image_histogram_entropy_bits=tuple(entropy_bits(h) for h in hist))
    if features is None:
        notes.append("no features connected: feature_vendi and mean_cosine_distance are 0")
        return DiversityResult(**pixel, notes=tuple(notes))
    emb = getattr(features, "embeddings", features)
    if int(emb.shape[0]) != n:
        notes.append(f"features have {int(emb.shape[0])} rows but there are {n} images")
    return DiversityResult(**pixel, feature_vendi=vendi_score(emb), mean_cosine_distance=mean_pairwise_cosine_distance(emb),
                           feature_model=str(getattr(features, "model", "")), feature_count=int(emb.shape[0]),
                           notes=tuple(notes))


@dataclass(frozen=True)
class StabilityResult:
    count: int
    tolerance: float
    max_abs_diff: float
    mean_abs_diff: float
    per_image_max_abs_diff: tuple[float, ...]
    feature_variance: float = 0.0
    notes: tuple[str, ...] = ()

    @property
    def identical(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def as_dict(self) -> dict:
        return {"metric": "stability", "count": self.count, "tolerance": self.tolerance,
                "max_abs_diff": self.max_abs_diff, "mean_abs_diff": self.mean_abs_diff,
                "per_image_max_abs_diff": list(self.per_image_max_abs_diff),
                "feature_variance": self.feature_variance, "identical": self.identical, "notes": list(self.notes)}


def stability(image_a, image_b, tolerance: float = 0.0, features=None) -> StabilityResult:
    """How far two runs that should be equal are apart; ``identical`` when max |a-b| <= tolerance."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}: use 0 for bit-identical")
    a, b = broadcast_pair(image_a, image_b)
    diff = (a - b).abs()
    per_image = diff.flatten(1)
    variance, notes = 0.0, []
    if features is None:
        notes.append("no features connected: feature_variance is 0")
    else:
        emb = getattr(features, "embeddings", features).double().flatten(1)
        if emb.shape[0] < 2:
            notes.append("feature_variance needs at least 2 feature rows: 0")
        else:
            variance = float(emb.var(dim=0, unbiased=False).mean())
            notes.append("feature_variance: mean over dimensions of the population variance across rows")
    return StabilityResult(count=a.shape[0], tolerance=tolerance, max_abs_diff=float(diff.max()),
                           mean_abs_diff=float(diff.mean()),
                           per_image_max_abs_diff=tuple(float(v) for v in per_image.max(dim=1).values),
                           feature_variance=variance, notes=tuple(notes))


def clip_scores(encoder, images, texts) -> list[float]:
    """100 * max(cos(image, text), 0) per image (torchmetrics' CLIPScore definition).

    ``texts``: one string for every image, or one string per image."""
    from .images import check_image

    images = check_image(images, "image")
    texts = _paired_texts(texts, images.shape[0])
    img = encoder.encode_images(images).double()
    txt = encoder.encode_texts(list(texts)).double()
    cos = (img * txt).sum(-1)
    return [float(v) for v in 100.0 * cos.clamp_min(0.0)]


def _paired_texts(texts, n: int) -> tuple[str, ...]:
    texts = [texts] if isinstance(texts, str) else [str(t) for t in texts]
    if len(texts) == 1:
        texts = texts * n
    if len(texts) != n:
        raise ValueError(f"got {len(texts)} texts for {n} images: give one text, or one per image")
    if not all(t.strip() for t in texts):
        raise ValueError("text is empty: type the prompt or connect the caption to score against")
    return tuple(texts)


@dataclass(frozen=True)
class ClipScoreResult:
    scores: tuple[float, ...]
    texts: tuple[str, ...]  # the text each image was scored against
    model: str = ""

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else 0.0

    def as_dict(self) -> dict:
        return {"metric": "clip_score", "model": self.model, "mean": self.mean,
                "images": [{"index": i, "score": s, "text": t} for i, (s, t) in enumerate(zip(self.scores, self.texts))]}


def clip_score(encoder, images, texts) -> ClipScoreResult:
    """CLIP score of each image against its text (one text for all, or one per image, in order)."""
    from .images import check_image

    images = check_image(images, "image")
    paired = _paired_texts(texts, images.shape[0])
    return ClipScoreResult(tuple(clip_scores(encoder, images, paired)), paired, str(getattr(encoder, "name", "")))
