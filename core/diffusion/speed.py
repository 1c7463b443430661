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
        """Switches that change the loaded modules (part of the model-cache key)."""
        return (
            ("attention_slicing", self.attention_slicing),
            ("vae_slicing", self.vae_slicing),
            ("vae_tiling", self.vae_tiling),
            ("channels_last", self.channels_last),
            ("torch_compile", self.torch_compile),
            ("cpu_offload", self.cpu_offload),
        )


def apply_speed(pipe, options: SpeedOptions, device) -> list[str]:
    """Apply the module-changing switches to a freshly loaded pipeline; returns what was applied."""
    import torch

    applied = []
    if options.attention_slicing and hasattr(pipe, "enable_attention_slicing"):
        pipe.enable_attention_slicing()
        applied.append("attention_slicing")
    vae = getattr(pipe, "vae", None)
    if options.vae_slicing and hasattr(vae, "enable_slicing"):
        vae.enable_slicing()
        applied.append("vae_slicing")
    if options.vae_tiling and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
        applied.append("vae_tiling")
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    if options.channels_last and denoiser is not None:
        denoiser.to(memory_format=torch.channels_last)
        applied.append("channels_last")
    if options.cpu_offload:
        if host.in_comfyui():
            log.warning("CPU offload ignored inside ComfyUI: its model management already moves models in and out of VRAM")
        elif getattr(device, "type", str(device)) != "cuda":
            log.warning("CPU offload ignored: it only helps on a CUDA device (device is %s)", device)
        else:
            pipe.enable_model_cpu_offload(device=device)
            applied.append("cpu_offload")
    if options.torch_compile and denoiser is not None:
        denoiser.compile()
        applied.append("torch_compile")
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
