"""The one module-level cache of loaded models.

Keyed by (kind, resolved path or repo id, dtype, device, options). Loading a model the cache
already holds costs nothing.

Who decides what stays loaded:

- Inside ComfyUI, ComfyUI's memory manager. Every cached model is wrapped in a
  ``HostedModel`` (core/hosted_model.py) and registered with ``comfy.model_management`` through
  ``core.host`` at load and at every use (``prepare``), so it is listed in
  ``current_loaded_models`` with its size; ComfyUI's loads evict ours when memory is short (and
  ours evict ComfyUI's), and ``POST /free`` unloads ours. An unloaded model is reloaded from
  disk on its next use, into the same module objects.
- Standalone (CLI, tests), the LRU byte limit below (``LLM_ASSIST_CACHE_LIMIT_MB``); before a
  model loads onto an accelerator the other cached models move off it.

``keep_loaded=False`` (every loader): the weights are freed as soon as the node that used them
finishes (``node_finished``, called by every node's guard); the next use reloads them.
"""
from __future__ import annotations

import gc
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from . import host
from .hosted_model import HostedModel, hosted_of, named_torch_modules, value_bytes

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
    hosted: HostedModel | None = None

    @property
    def live_bytes(self) -> int:
        return 0 if self.hosted is not None and self.hosted.dropped else self.size_bytes


@dataclass
class CacheStats:
    entries: int
    bytes: int
    loads: int
    hits: int
    keys: list = field(default_factory=list)


def module_bytes(obj) -> int:
    """Parameter + buffer bytes of a torch module, a diffusers pipeline's modules or a handle's."""
    return value_bytes(obj)


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
                if entry.hosted is not None:
                    entry.hosted.keep_loaded = entry.keep_loaded
                self._entries.move_to_end(key)
                return entry.value
            if key.device not in ("cpu", ""):
                if not host.in_comfyui():  # inside ComfyUI its memory manager decides
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
            hosted = self._host(key, value, loader, offload, keep_loaded)
            self._entries[key] = _Entry(value, size, keep_loaded, offload=offload, hosted=hosted)
            self._evict_over_limit(protect=key)
        if hosted is not None:
            host.register_models([hosted])
        return value

    def _host(self, key: CacheKey, value, loader, offload, keep_loaded) -> HostedModel | None:
        """A HostedModel for values that hold torch modules (None for anything else)."""
        if not named_torch_modules(value):
            return None
        import torch

        name = f"{key.kind} {str(key.source).replace(chr(92), '/').rstrip('/').split('/')[-1]}"
        hosted = HostedModel(value, loader, torch.device(key.device or "cpu"), movable=offload is not None, name=name)
        hosted.cache, hosted.cache_key, hosted.keep_loaded, hosted.offload = self, key, keep_loaded, offload
        return hosted.attach()

    def forget(self, hosted: HostedModel) -> None:
        """ComfyUI unloaded ``hosted``: drop its entry (the value stays usable; ``prepare`` reloads)."""
        with self._lock:
            key = hosted.cache_key
            entry = self._entries.get(key)
            if entry is not None and entry.hosted is hosted:
                self._entries.pop(key, None)

    def readd(self, hosted: HostedModel) -> None:
        """Put a reloaded model back (same key) unless the key now holds another value."""
        with self._lock:
            key = hosted.cache_key
            if key is None or key in self._entries:
                return
            self._entries[key] = _Entry(hosted.model, hosted.size, getattr(hosted, "keep_loaded", True), hosted=hosted,
                                        offload=hosted.offload)
            self._evict_over_limit(protect=key)

    def release(self, key: CacheKey) -> None:
        """Called after use: frees the entry's weights unless it was loaded with keep_loaded=True."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and not entry.keep_loaded:
                self._drop(key, free_weights=True)

    def offload_others(self, keep: CacheKey) -> None:
        """Move every other entry that can be offloaded off the accelerator."""
        for key, entry in list(self._entries.items()):
            if key != keep and entry.offload is not None and key.device not in ("cpu", ""):
                try:
                    entry.offload(entry.value)
                except Exception:
                    log.warning("could not offload %s", key.source, exc_info=True)

    def _evict_over_limit(self, protect: CacheKey) -> None:
        if not self.limit_bytes or host.in_comfyui():  # inside ComfyUI its memory manager decides
            return
        while self.total_bytes() > self.limit_bytes and len(self._entries) > 1:
            oldest = next(k for k in self._entries if k != protect)
            log.info("model cache over %d bytes: dropping %s", self.limit_bytes, oldest.source)
            self._drop(oldest)

    def _drop(self, key: CacheKey, free_weights: bool = False) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None and entry.hosted is not None:
            host.unregister_models([entry.hosted])
            if free_weights:  # a handle may still hold the value: free its tensors now
                entry.hosted.unload(free=True)
        entry = None
        gc.collect()
        host.empty_cache()

    def drop(self, key: Hashable) -> None:
        with self._lock:
            self._drop(key)

    def clear(self) -> None:
        with self._lock:
            host.unregister_models([e.hosted for e in self._entries.values() if e.hosted is not None])
            self._entries.clear()
            gc.collect()
            host.empty_cache()

    def __contains__(self, key) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def total_bytes(self) -> int:
        return sum(e.live_bytes for e in self._entries.values())

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(len(self._entries), self.total_bytes(), self.loads, self.hits, list(self._entries))


class BoundedDict(OrderedDict):
    """A dict that keeps its ``maxsize`` most recently written or read items (text-embedding rows)."""

    def __init__(self, maxsize: int = 4096):
        super().__init__()
        self.maxsize = int(maxsize)

    def __getitem__(self, key):
        value = super().__getitem__(key)
        self.move_to_end(key)
        return value

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.maxsize:
            self.popitem(last=False)


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


_transient: dict[int, HostedModel] = {}  # keep_loaded off, used by the running node


def prepare(value):
    """Before using a cached model: reload it if it was unloaded, and (inside ComfyUI) load it
    through ComfyUI's memory manager, which frees room for it. Returns ``value``."""
    hosted = hosted_of(value)
    if hosted is None:
        return value
    hosted.ensure_loaded()
    if hosted.cache is not None and hosted.cache_key not in hosted.cache:
        hosted.cache.readd(hosted)
    if not hosted.keep_loaded:
        _transient[id(hosted)] = hosted
    host.load_models([hosted])
    return value


def node_finished() -> None:
    """After every node (nodes/_guard.py): free the models loaded with keep_loaded off that the
    node used; their next use reloads them. The same on every loader."""
    while _transient:
        _, hosted = _transient.popitem()
        if hosted.keep_loaded:
            continue
        if hosted.cache is not None and hosted.cache_key in hosted.cache:
            hosted.cache.release(hosted.cache_key)
        else:
            host.unregister_models([hosted])
            hosted.unload(free=True)
