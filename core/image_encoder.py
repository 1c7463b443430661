"""Image encoders (CLIP / SigLIP folders with both towers): F(x) for images and text.

Used by Encode Image (features), keyword ranking (embedding / image-grounded) and CLIP Score.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from . import hf_loading, host
from . import model_cache
from .model_cache import MODEL_CACHE, BoundedDict

log = logging.getLogger(__name__)


def _as_embedding(output):
    """transformers 5 returns output objects from get_*_features; v4 returned tensors."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    for attr in ("pooler_output", "image_embeds", "text_embeds"):
        value = getattr(output, attr, None)
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"unexpected feature output {type(output).__name__}")


@dataclass(frozen=True, eq=False)
class ImageEncoder:
    """A loaded CLIP-style model: ``encode_images`` and ``encode_texts`` give L2-normalised rows."""

    model: Any
    processor: Any
    name: str
    device: Any
    dtype: Any
    cache_key: Any = None
    _text_cache: dict = field(default_factory=lambda: BoundedDict(4096), repr=False)  # CPU rows, dies with the encoder

    @property
    def tokenizer(self):
        return getattr(self.processor, "tokenizer", self.processor)

    @property
    def max_text_tokens(self) -> int:
        config = getattr(self.model.config, "text_config", None)
        return int(getattr(config, "max_position_embeddings", 77) or 77)

    def _ensure_device(self) -> None:
        """Reload if ComfyUI unloaded it, load through ComfyUI's memory manager, and move back to
        the chosen device if the cache offloaded the model to make room."""
        model_cache.prepare(self)
        param = next(self.model.parameters(), None)
        if param is not None and param.device.type != self.device.type:
            self.model.to(self.device)

    def encode_images(self, image, batch_size: int = 16):
        """IMAGE [B,H,W,3] -> float32 [B,D] on the CPU, L2-normalised."""
        import torch

        from .images import to_pil

        pil = to_pil(image)
        self._ensure_device()
        rows = []
        with torch.inference_mode():
            for start in range(0, len(pil), batch_size):
                host.check_interrupt()
                # channels_last said outright: transformers 4.x guesses, and reads a 1- or 3-pixel-high image as channels-first
                inputs = self.processor(images=pil[start:start + batch_size], return_tensors="pt",
                                        input_data_format="channels_last")
                pixel_values = inputs["pixel_values"].to(self.device, self.dtype)
                rows.append(_as_embedding(self.model.get_image_features(pixel_values=pixel_values)).float().cpu())
        return torch.nn.functional.normalize(torch.cat(rows), dim=-1)

    def encode_texts(self, texts: list[str], batch_size: int = 64):
        """list of strings -> float32 [N,D] on the CPU, L2-normalised; repeated texts are cached."""
        import torch

        texts = [str(t) for t in texts]
        rows = {t: self._text_cache[t] for t in dict.fromkeys(texts) if t in self._text_cache}
        missing = [t for t in dict.fromkeys(texts) if t not in rows]
        if missing:
            self._ensure_device()
        with torch.inference_mode():
            for start in range(0, len(missing), batch_size):
                chunk = missing[start:start + batch_size]
                padding = "max_length" if "siglip" in type(self.model).__name__.lower() else True
                inputs = self.tokenizer(chunk, padding=padding, truncation=True,
                                        max_length=self.max_text_tokens, return_tensors="pt")
                inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
                emb = _as_embedding(self.model.get_text_features(**inputs)).float().cpu()
                emb = torch.nn.functional.normalize(emb, dim=-1)
                for text, row in zip(chunk, emb):
                    self._text_cache[text] = rows[text] = row
        if not texts:
            dim = int(getattr(self.model.config, "projection_dim", 0) or 0)
            return torch.zeros((0, dim))
        return torch.stack([rows[t] for t in texts])


def load_image_encoder(name: str, options: hf_loading.LoadOptions = hf_loading.LoadOptions()) -> ImageEncoder:
    """Load (or fetch from the cache) a CLIP / SigLIP folder from models/clip_vision."""
    source = hf_loading.resolve_source("clip_vision", name, options.allow_download)
    device, dtype, key = hf_loading.plan_load("image_encoder", source, options)

    def load():
        from transformers import AutoModel, AutoProcessor

        model, processor = hf_loading.from_pretrained_pair(AutoModel, AutoProcessor, source, options, dtype, device)
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise ValueError(
                f"{source} holds a {type(model).__name__}, not an image encoder with image and text "
                "towers: use a CLIP or SigLIP folder"
            )
        model = hf_loading.place_and_quantize(model, options, device, dtype)
        return ImageEncoder(model, processor, _display_name(source), device, next(model.parameters()).dtype, key)

    return MODEL_CACHE.get_or_load(key, load, keep_loaded=options.keep_loaded, offload=_offload)


def _display_name(source: str) -> str:
    from pathlib import Path

    return Path(source).name if "/" not in source or Path(source).exists() else source


def _offload(encoder: ImageEncoder) -> None:
    encoder.model.to("cpu")
