"""Speed switches for a loaded pipeline, and step-level feature caching (DeepCache).

What each switch does (measured numbers: bench/generate_bench.py on CPU, bench/gpu.py on CUDA):

- attention slicing: computes attention in slices (less peak memory, usually slower);
- VAE slicing: decodes a batch one image at a time (less memory for batches);
- VAE tiling: decodes/encodes in tiles (large images on small GPUs; slightly different pixels);
- channels-last: UNet weights in NHWC memory format (pays on CUDA tensor cores);
- torch.compile: compiles the UNet in place (``module.compile()``); first run pays the compile;
- CPU offload: ``enable_model_cpu_offload`` (CUDA, standalone only: inside ComfyUI its model
  management owns VRAM, so the switch is ignored with a warning);
- step cache (DeepCache, optional package ``DeepCache``): reuses the deep UNet features of the
  previous full step for ``interval - 1`` steps out of ``interval``; changes pixels a little.
  Token merging (``tomesd`` 0.1.3) was checked and does not qualify: with diffusers 0.42 its
  patch leaves the output bit-identical (it does not take effect), and it is unmaintained.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from .. import host

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeedOptions:
    attention_slicing: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    channels_last: bool = False
    torch_compile: bool = False
    cpu_offload: bool = False
    step_cache_interval: int = 0  # 0/1: off; N >= 2: DeepCache full UNet every N steps

    def module_options(self) -> tuple:
        """Switches that need a separately loaded copy (part of the model-cache key): only CPU
        offload, whose hooks own the placement. Every other switch is set on the cached pipeline
        in place when a run starts (``apply_speed``), so toggling one never reloads weights."""
        return (("cpu_offload", self.cpu_offload),)

    def in_place(self) -> tuple:
        return (self.attention_slicing, self.vae_slicing, self.vae_tiling, self.channels_last, self.torch_compile)


_STATE = "_llma_speed"


def _forget_state(value, modules) -> None:
    """The weights were unloaded (channels-last is a property of the tensors): set it again next run."""
    getattr(value, "__dict__", {}).pop(_STATE, None)


def apply_speed(pipe, options: SpeedOptions, device) -> list[str]:
    """Set the in-place switches of ``options`` on ``pipe`` (on or off), changing only what
    differs from the last call; CPU offload only on a freshly loaded pipeline. Returns the
    switches that are on."""
    import torch

    from ..hosted_model import on_unload

    on_unload(_forget_state)
    state = pipe.__dict__.get(_STATE)
    wanted = options.in_place()
    if state != wanted:
        old = state or (False, False, False, False, False)
        slicing, vae_slicing, vae_tiling, channels_last, compiled = wanted
        vae = getattr(pipe, "vae", None)
        denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
        if slicing != old[0] and hasattr(pipe, "enable_attention_slicing"):
            pipe.enable_attention_slicing() if slicing else pipe.disable_attention_slicing()
        if vae_slicing != old[1] and hasattr(vae, "enable_slicing"):
            vae.enable_slicing() if vae_slicing else vae.disable_slicing()
        if vae_tiling != old[2] and hasattr(vae, "enable_tiling"):
            vae.enable_tiling() if vae_tiling else vae.disable_tiling()
        if denoiser is not None and (channels_last != old[3] or state is None and channels_last):
            denoiser.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        if denoiser is not None and compiled != old[4]:
            if compiled:
                denoiser.compile()
            else:
                denoiser._compiled_call_impl = None  # what Module.compile() set: plain forward again
        pipe.__dict__[_STATE] = wanted
    applied = [name for name, on in zip(("attention_slicing", "vae_slicing", "vae_tiling", "channels_last", "torch_compile"), wanted) if on]
    if options.cpu_offload and not pipe.__dict__.get("_llma_offload"):
        if host.in_comfyui():
            log.warning("CPU offload ignored inside ComfyUI: its model management already moves models in and out of VRAM")
        elif getattr(device, "type", str(device)) != "cuda":
            log.warning("CPU offload ignored: it only helps on a CUDA device (device is %s)", device)
        else:
            pipe.enable_model_cpu_offload(device=device)
            pipe.__dict__["_llma_offload"] = True
    if pipe.__dict__.get("_llma_offload"):
        applied.append("cpu_offload")
    return applied


def check_step_cache(interval: int) -> int:
    interval = int(interval or 0)
    if interval < 0 or interval > 10:
        raise ValueError(f"step_cache_interval must be 0 (off) or 2..10, got {interval}")
    if interval >= 2:
        try:
            import DeepCache  # noqa: F401
        except ImportError as exc:
            raise ValueError(
                "step_cache_interval needs the DeepCache package: `pip install --no-deps DeepCache` "
                "(pure Python), or set step_cache_interval to 0"
            ) from exc
    return interval


@contextlib.contextmanager
def step_cache(pipe, interval: int):
    """DeepCache around one pipeline call (wraps the shared UNet's forwards, unwraps after)."""
    if int(interval or 0) < 2 or getattr(pipe, "unet", None) is None:
        yield
        return
    from DeepCache import DeepCacheSDHelper

    helper = DeepCacheSDHelper(pipe=pipe)
    helper.set_params(cache_interval=int(interval), cache_branch_id=0)
    helper.enable()
    try:
        yield
    finally:
        helper.disable()
