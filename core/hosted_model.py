"""A ``ModelPatcher``-compatible view of one cached model, so ComfyUI's memory manager owns ours too.

Inside ComfyUI every model the pack loads (captioner, language model, image encoder, sentence
encoder, a diffusion pipeline with all its components, the tiny VAE) is wrapped in a
``HostedModel`` and handed to ``comfy.model_management.load_models_gpu`` through ``core.host``.
It then appears in ``current_loaded_models`` with its real size (parameter + buffer bytes), and
ComfyUI's ``free_memory`` / ``unload_all_models`` (memory pressure, ``POST /free``) call the
methods below like they call a ``ModelPatcher``'s:

- ``partially_load(device)``: weights onto the device (reloaded from disk first if dropped);
- ``detach(unpatch_all=True)``: unload. Weights on an accelerator move to the offload device
  (the CPU), as ComfyUI does with its own models; weights already on the CPU are *dropped*
  (every tensor replaced by a meta tensor of the same shape), which returns their RAM;
- the next use (``prepare``) reloads a dropped model from disk and puts the fresh tensors into
  the *same* module objects, so handles on ComfyUI's sockets (cached by its executor) stay valid
  and speed switches or derived pipelines that share the modules keep working.

Partial (low-VRAM) loading is not offered: ``partially_unload`` frees nothing, so ComfyUI unloads
the whole model. This module never imports ComfyUI; ``core.host`` registers the wrappers.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any, Callable

log = logging.getLogger(__name__)

_ATTR = "_llma_hosted"
_unload_listeners: list[Callable[[Any, list], None]] = []


def on_unload(callback: Callable[[Any, list], None]) -> None:
    """``callback(value, modules)`` after a model's weights were dropped or offloaded (caches
    derived from those weights, such as prompt embeddings, forget them)."""
    if callback not in _unload_listeners:
        _unload_listeners.append(callback)


def named_torch_modules(value) -> dict[str, Any]:
    """The torch modules that hold ``value``'s weights, by name.

    A module itself (``""``), a diffusers pipeline's components, or the module fields of one of
    the pack's frozen handle dataclasses (``Captioner.model``, ``LanguageModel.model`` ...).
    """
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    module_cls = torch.nn.Module
    if isinstance(value, module_cls):
        return {"": value}
    components = getattr(value, "components", None)
    if isinstance(components, dict):
        return {k: v for k, v in components.items() if isinstance(v, module_cls)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        found = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name, None)
            if isinstance(item, module_cls):
                found[f.name] = item
        return found
    return {}


def _unique_modules(value) -> list:
    seen, out = set(), []
    for module in named_torch_modules(value).values():
        if id(module) not in seen:
            seen.add(id(module))
            out.append(module)
    return out


def _tensors(modules):
    seen = set()
    for module in modules:
        for tensor in list(module.parameters()) + list(module.buffers()):
            if id(tensor) not in seen:
                seen.add(id(tensor))
                yield tensor


def value_bytes(value) -> int:
    """Parameter + buffer bytes of every module of ``value`` (shared tensors counted once)."""
    return sum(t.numel() * t.element_size() for t in _tensors(_unique_modules(value)))


def _same_device(a, b) -> bool:
    if a is None or b is None:
        return False
    if a.type != b.type:
        return False
    return a.index is None or b.index is None or a.index == b.index


def _droppable(modules) -> bool:
    """Plain parameters and buffers only (quantized modules keep packed weights elsewhere)."""
    for module in modules:
        for sub in module.modules():
            where = type(sub).__module__
            if "quantized" in where or "bitsandbytes" in where or hasattr(sub, "_packed_params"):
                return False
    return True


def _to_meta(modules) -> None:
    """Replace every parameter and buffer with a meta tensor of the same shape (frees the storage;
    tied weights stay tied)."""
    import torch

    replaced: dict[int, Any] = {}
    for module in modules:
        for sub in module.modules():
            for name, param in list(sub._parameters.items()):
                if param is None:
                    continue
                if id(param) not in replaced:
                    replaced[id(param)] = torch.nn.Parameter(torch.empty_like(param, device="meta"), requires_grad=param.requires_grad)
                sub._parameters[name] = replaced[id(param)]
            for name, buf in list(sub._buffers.items()):
                if buf is None:
                    continue
                if id(buf) not in replaced:
                    replaced[id(buf)] = torch.empty_like(buf, device="meta")
                sub._buffers[name] = replaced[id(buf)]


def _transplant(old, new) -> None:
    """Give module ``old`` the parameters and buffers of ``new`` (same architecture)."""
    new_subs = dict(new.named_modules(remove_duplicate=False))
    for name, sub in old.named_modules(remove_duplicate=False):
        src = new_subs.get(name)
        if src is None:
            raise RuntimeError(f"reloaded model has no submodule {name!r} ({type(old).__name__}): the files changed on disk")
        for pname, param in list(sub._parameters.items()):
            if param is not None:
                sub._parameters[pname] = src._parameters[pname]
        for bname, buf in list(sub._buffers.items()):
            if buf is not None:
                sub._buffers[bname] = src._buffers[bname]


def _return_memory() -> None:
    """Hand freed weight memory back to the OS now (glibc keeps freed heap pages otherwise)."""
    import gc
    import sys

    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


class HostedModel:
    """What ComfyUI's ``LoadedModel`` wraps for one of our cached models (see the module doc)."""

    parent = None  # no clone parent: LoadedModel reads it

    def __init__(self, value, loader: Callable[[], Any], load_device, *, offload_device=None,
                 movable: bool = True, name: str = "", on_reload: Callable[[Any], None] | None = None):
        import torch

        self.model = value  # LoadedModel.real_model / the log line's class name
        self.loader = loader
        self.load_device = load_device
        self.offload_device = offload_device if offload_device is not None else torch.device("cpu")
        self.movable = bool(movable)
        self.name = name or type(value).__name__
        self.size = value_bytes(value)
        self.dropped = False
        self.reloads = 0
        self.cache = None  # the ModelCache that holds it, its key there, its keep_loaded and offload
        self.cache_key = None
        self.keep_loaded = True
        self.offload = None
        self._on_reload = on_reload
        self._lock = threading.RLock()
        self.droppable = movable and _droppable(_unique_modules(value))

    # ------------------------------------------------------------ attach / find
    def attach(self) -> "HostedModel":
        """Let ``hosted_of(value)`` find this wrapper (handles stay frozen dataclasses)."""
        try:
            object.__setattr__(self.model, _ATTR, self)
        except (AttributeError, TypeError):
            pass
        return self

    # ------------------------------------------------------------ state
    def weights_device(self):
        for tensor in _tensors(_unique_modules(self.model)):
            return tensor.device
        return None

    def current_loaded_device(self):
        device = self.weights_device()
        return self.offload_device if device is None or device.type == "meta" else device

    def model_size(self) -> int:
        return self.size

    def loaded_size(self) -> int:
        if self.dropped:
            return 0
        return self.size if _same_device(self.weights_device(), self.load_device) else 0

    def model_dtype(self):
        import torch

        for tensor in _tensors(_unique_modules(self.model)):
            if tensor.is_floating_point():
                return tensor.dtype
        return torch.float32

    # ------------------------------------------------------------ ModelPatcher surface used by ComfyUI
    def lowvram_patch_counter(self) -> int:
        return 0

    def model_patches_to(self, device_or_dtype) -> None:
        return None

    def model_patches_models(self) -> list:
        return []

    def is_clone(self, other) -> bool:
        return other is self or getattr(other, "model", None) is self.model

    def clone_has_same_weights(self, other) -> bool:
        return self.is_clone(other)

    def memory_required(self, input_shape=None) -> int:
        return 0

    def partially_load(self, device_to, extra_memory=0, force_patch_weights=False) -> int:
        """Put the whole model on ``device_to``; returns the bytes that newly arrived there."""
        with self._lock:
            before = self.loaded_size()
            self.ensure_loaded()
            if self.movable and not _same_device(self.weights_device(), device_to):
                self._move(device_to)
            return max(0, self.loaded_size() - before)

    def partially_unload(self, device_to, memory_to_free=0) -> int:
        return 0  # all or nothing: ComfyUI then calls detach()

    def detach(self, unpatch_all=True):
        """ComfyUI unloads the model (``unpatch_all=False`` only re-registers it: keep it)."""
        if unpatch_all:
            self.unload()
        return self.model

    def cleanup(self) -> None:
        return None

    # ------------------------------------------------------------ ours
    def _move(self, device) -> None:
        target = self.model
        if hasattr(target, "components") and hasattr(target, "to"):
            target.to(device)
        else:
            for module in _unique_modules(target):
                module.to(device)

    def unload(self, free: bool = False) -> str:
        """Offload to the CPU when on an accelerator, else (or with ``free``) drop the weights.

        Returns what it did: "offloaded", "dropped", or "kept" (quantized weights, which are
        freed when the last handle to them goes)."""
        with self._lock:
            if self.dropped:
                return "dropped"
            device = self.weights_device()
            on_accelerator = device is not None and device.type != "meta" and not _same_device(device, self.offload_device)
            if self.movable and on_accelerator and not free:
                self._move(self.offload_device)
                action = "offloaded"
            elif self.droppable:
                _to_meta(_unique_modules(self.model))
                self.dropped = True
                action = "dropped"
                _return_memory()
            else:
                action = "kept"  # quantized weights: freed when the last handle goes
            if self.cache is not None and action != "offloaded":
                self.cache.forget(self)
        for callback in list(_unload_listeners):
            try:
                callback(self.model, _unique_modules(self.model))
            except Exception:  # noqa: BLE001 - a cache listener must not break an unload
                log.warning("unload listener failed", exc_info=True)
        log.info("%s %s (%.1f MB)", action, self.name, self.size / 1e6)
        return action

    def ensure_loaded(self) -> bool:
        """Reload dropped weights from disk into the same modules; True when it reloaded."""
        with self._lock:
            if not self.dropped:
                return False
            log.info("reloading %s (%.1f MB) after it was unloaded", self.name, self.size / 1e6)
            fresh = self.loader()
            new_modules = named_torch_modules(fresh)
            for name, old in named_torch_modules(self.model).items():
                if name not in new_modules:
                    raise RuntimeError(f"reloaded {self.name} has no component {name!r}: the files changed on disk; load it again")
                _transplant(old, new_modules[name])
            del fresh, new_modules
            self.dropped = False
            self.reloads += 1
            if self._on_reload is not None:
                self._on_reload(self.model)
            return True


def hosted_of(value) -> HostedModel | None:
    return getattr(value, _ATTR, None) if value is not None else None
