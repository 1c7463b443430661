"""A tiny fault injector for tests: simulate out-of-memory (and other faults) at allocation points.

Stage code calls ``faults.maybe_raise("oom")`` right before a big allocation (a ``generate``
call, a pipeline call). It costs one dict lookup and does nothing unless a test armed it:

    with faults.inject_oom(times=1):
        node.run(...)          # the first armed point raises a simulated CUDA OOM

The simulated OOM is ``torch.cuda.OutOfMemoryError`` when torch has it (a RuntimeError whose
message says "out of memory", like the real one), so code that handles real OOMs handles it.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator

_lock = threading.Lock()
_armed: dict[str, list] = {}  # kind -> [times left, exception factory]
_fired: dict[str, int] = {}


def _oom() -> BaseException:
    message = "CUDA out of memory. Tried to allocate 2.00 GiB (simulated by core.faults)"
    try:
        import torch

        return torch.cuda.OutOfMemoryError(message)
    except (ImportError, AttributeError):  # pragma: no cover - torch always present where it matters
        return RuntimeError(message)


FACTORIES: dict[str, Callable[[], BaseException]] = {
    "oom": _oom,
    "io": lambda: OSError("simulated I/O error (core.faults)"),
}


def maybe_raise(kind: str) -> None:
    """Raise the armed fault ``kind`` if a test armed it (and count it); otherwise do nothing."""
    if not _armed:
        return
    with _lock:
        slot = _armed.get(kind)
        if not slot or slot[0] <= 0:
            return
        slot[0] -= 1
        _fired[kind] = _fired.get(kind, 0) + 1
        factory = slot[1]
    raise factory()


def fired(kind: str) -> int:
    """How many times ``kind`` was raised since it was last armed (for tests' assertions)."""
    return _fired.get(kind, 0)


@contextmanager
def inject(kind: str, times: int = 1, factory: Callable[[], BaseException] | None = None) -> Iterator[None]:
    """Arm ``kind`` for the next ``times`` calls of ``maybe_raise(kind)`` inside the block."""
    factory = factory or FACTORIES.get(kind)
    if factory is None:
        raise ValueError(f"unknown fault kind {kind!r}: use one of {sorted(FACTORIES)} or pass a factory")
    with _lock:
        previous = _armed.get(kind)
        _armed[kind] = [int(times), factory]
        _fired[kind] = 0
    try:
        yield
    finally:
        with _lock:
            if previous is None:
                _armed.pop(kind, None)
            else:
                _armed[kind] = previous


def inject_oom(times: int = 1):
    """Simulate ``times`` CUDA out-of-memory errors at the next allocation points."""
    return inject("oom", times)


# How torch and its allocators word "out of memory" (CUDA, MPS, XPU, and the CPU allocator's
# "DefaultCPUAllocator: can't allocate memory: you tried to allocate N bytes").
OOM_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory", "failed to allocate memory")


def is_oom(exc: BaseException) -> bool:
    """True for a (real or simulated) out-of-memory error from torch, on any device (CPU included)."""
    import torch

    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if (oom is not None and isinstance(exc, oom)) or isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(m in text for m in OOM_MESSAGES)
