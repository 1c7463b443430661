"""The one module-level cache of loaded models.

Keyed by (kind, resolved path or repo id, dtype, device, options). Loading a model the cache
already holds costs nothing. Entries loaded with ``keep_loaded=False`` are handed out once more
and dropped by ``release`` after use. Inside ComfyUI, before a large model loads we ask
``comfy.model_management`` to free the bytes it needs, and we move our other cached models off
the GPU first so a captioner or LLM leaves VRAM before the diffusion model needs it.
"""
from __future__ import annotations

import gc
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from . import host

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheKey:
    kind: str  # "captioner", "language_model", "image_encoder", "pipeline", ...
    source: str  # resolved path or repo id
    dtype: str
    device: str
    options: tuple = ()  # sorted (name, value) pairs that change what is loaded


@dataclass
class _Entry:
    value: Any
    size_bytes: int
    keep_loaded: bool
    hits: int = 0
    offload: Callable[[Any], None] | None = None


@dataclass
class CacheStats:
    entries: int
    bytes: int
    loads: int
    hits: int
    keys: list = field(default_factory=list)


def module_bytes(obj) -> int:
    """Parameter + buffer bytes of a torch module or of a diffusers pipeline's modules."""
    total = 0
    modules = []
    if hasattr(obj, "components") and isinstance(getattr(obj, "components"), dict):
        modules = [m for m in obj.components.values() if hasattr(m, "parameters")]
    elif hasattr(obj, "parameters"):
        modules = [obj]
    seen = set()
    for module in modules:
        for tensor in list(module.parameters()) + list(module.buffers()):
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()
    return total


def weights_bytes(source: str) -> int:
    """Bytes of the safetensors weights at ``source`` (a file or a model folder); 0 if unknown."""
    from pathlib import Path

    path = Path(source)
    try:
        if path.is_file():
            return path.stat().st_size
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*.safetensors"))
    except OSError:
        pass
    return 0


class ModelCache:
    """LRU cache of loaded models with a byte limit (0 = unlimited)."""

    def __init__(self, limit_bytes: int = 0):
        self._entries: "OrderedDict[CacheKey, _Entry]" = OrderedDict()
        self._lock = threading.RLock()
        self.limit_bytes = limit_bytes
        self.loads = 0
        self.hits = 0

    def get_or_load(
        self,
        key: CacheKey,
        loader: Callable[[], Any],
        *,
        keep_loaded: bool = True,
        size_hint: int = 0,
        offload: Callable[[Any], None] | None = None,
    ):
        """Return the cached value for ``key`` or call ``loader()`` and cache its result."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.hits += 1
                self.hits += 1
                entry.keep_loaded = entry.keep_loaded or keep_loaded
                self._entries.move_to_end(key)
                return entry.value
            if key.device not in ("cpu", ""):
                # a captioner or LLM leaves the accelerator before the next model needs it
                self.offload_others(key)
                size_hint = size_hint or weights_bytes(key.source)
                if size_hint:
                    import torch

                    host.free_memory(size_hint, torch.device(key.device))
            log.info("loading %s %s (%s, %s)", key.kind, key.source, key.dtype, key.device)
            value = loader()
            self.loads += 1
            size = module_bytes(value) or getattr(value, "size_bytes", 0) or size_hint
            self._entries[key] = _Entry(value, size, keep_loaded, offload=offload)
            self._evict_over_limit(protect=key)
            return value

    def release(self, key: CacheKey) -> None:
        """Called after use: drops the entry unless it was loaded with keep_loaded=True."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and not entry.keep_loaded:
                self._drop(key)

    def offload_others(self, keep: CacheKey) -> None:
        """Move every other entry that can be offloaded off the accelerator."""
        for key, entry in list(self._entries.items()):
            if key != keep and entry.offload is not None and key.device not in ("cpu", ""):
                try:
                    entry.offload(entry.value)
                except Exception:
                    log.warning("could not offload %s", key.source, exc_info=True)

    def _evict_over_limit(self, protect: CacheKey) -> None:
        if not self.limit_bytes:
            return
        while self.total_bytes() > self.limit_bytes and len(self._entries) > 1:
            oldest = next(k for k in self._entries if k != protect)
            log.info("model cache over %d bytes: dropping %s", self.limit_bytes, oldest.source)
            self._drop(oldest)

    def _drop(self, key: CacheKey) -> None:
        self._entries.pop(key, None)
        gc.collect()
        host.empty_cache()

    def drop(self, key: Hashable) -> None:
        with self._lock:
            self._drop(key)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            gc.collect()
            host.empty_cache()

    def __contains__(self, key) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def total_bytes(self) -> int:
        return sum(e.size_bytes for e in self._entries.values())

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(len(self._entries), self.total_bytes(), self.loads, self.hits, list(self._entries))


def _limit_from_env() -> int:
    """``LLM_ASSIST_CACHE_LIMIT_MB``: cap on the bytes of cached models (0 or unset: no cap)."""
    import os

    raw = os.environ.get("LLM_ASSIST_CACHE_LIMIT_MB", "").strip()
    try:
        return max(0, int(float(raw) * 1e6)) if raw else 0
    except ValueError:
        log.warning("LLM_ASSIST_CACHE_LIMIT_MB=%r is not a number: no cache limit", raw)
        return 0


MODEL_CACHE = ModelCache(limit_bytes=_limit_from_env())
