"""Live previews for Generate / Enhance / Repair / Edit, the way ComfyUI's own samplers show them.

Which previewer a run gets (``make_previewer``):

1. the pipeline's own tiny VAE (Load Diffusion Pipeline's ``tiny_vae``), when one is loaded: an
   explicit choice on the node, so it previews whatever ComfyUI's preview method is;
2. otherwise ComfyUI's ``--preview-method`` decides, through ``core.host``: ``none`` (ComfyUI's
   default) shows progress only; ``auto`` / ``latent2rgb`` use ComfyUI's per-family
   latent-to-RGB factors (``comfy.latent_formats``); ``taesd`` uses the TAESD decoder ComfyUI
   finds in models/vae_approx (``taesd_decoder.safetensors`` ...), falling back to latent2rgb as
   its samplers do;
3. standalone (CLI, tests) there is no preview method: only the tiny VAE previews.

The latent format is ComfyUI's class for the pipeline's model family (``LATENT_FORMATS``); a
family ComfyUI 0.3.64 has no format for gets no latent2rgb preview. Packed latents (FLUX,
Qwen-Image: ``[B, tokens, C*4]``) are unpacked with the pipeline's own ``_unpack_latents``.
Previews never cost more than ``BUDGET`` (5 %) of the denoising time (``within_budget``). The
preview shows the current latents of each step (diffusers' ``callback_on_step_end`` gives
those, not the sampler's x0 prediction that ComfyUI shows), first image of the batch.
"""
from __future__ import annotations

import logging
import time

from .. import host

log = logging.getLogger(__name__)
BUDGET = 0.05  # previews may cost at most this share of the denoising time

# families.FAMILIES name -> comfy.latent_formats class name (ComfyUI 0.3.64: supported_models.py)
LATENT_FORMATS: dict[str, str] = {
    "sd1": "SD15",
    "sd2": "SD15",
    "sdxl": "SDXL",
    "sd3": "SD3",
    "flux": "Flux",
    "chroma": "Flux",
    "z-image": "Flux",  # the FLUX.1 VAE
    "qwen-image": "Wan21",
}
# pipeline class name prefixes for pipelines the families table does not name
_CLASS_PREFIXES = (("StableDiffusionXL", "SDXL"), ("StableDiffusion3", "SD3"), ("Flux2", ""), ("Flux", "Flux"),
                   ("Chroma", "Flux"), ("QwenImage", "Wan21"), ("StableDiffusion", "SD15"),
                   ("LatentConsistencyModel", "SD15"))


def latent_format_name(pipe) -> str | None:
    """ComfyUI's latent format class name for ``pipe`` (None when ComfyUI has none for it)."""
    try:
        from . import families

        family = families.family_of(pipe)
    except Exception:  # noqa: BLE001 - the table is optional here
        family = None
    if family is not None:
        return LATENT_FORMATS.get(family)
    name = type(pipe).__name__
    for prefix, fmt in _CLASS_PREFIXES:
        if name.startswith(prefix):
            return fmt or None
    return None


def spatial_latents(pipe, latents, height: int, width: int):
    """``[B, C, h, w]`` (or ``[B, C, T, h, w]``) latents: unpacks token-packed latents."""
    if latents.ndim == 3 and hasattr(pipe, "_unpack_latents"):
        scale = int(getattr(pipe, "vae_scale_factor", 8) or 8)
        return pipe._unpack_latents(latents, height, width, scale)
    return latents


def _tiny_vae_previewer(tiny_vae):
    import torch

    from ..images import from_nchw, to_pil

    size = host.preview_max_size()

    def preview(latents):
        if latents.ndim != 4:
            return None
        with torch.no_grad():
            image = tiny_vae.decode(latents[:1].to(tiny_vae.device, tiny_vae.dtype), return_dict=False)[0]
        return ("JPEG", to_pil(from_nchw((image.float() / 2 + 0.5).clamp(0, 1)))[0], size)

    return preview


def make_previewer(handle, pipe, height: int, width: int):
    """``latents -> preview tuple for ProgressBar.update_absolute``, or None (no previews)."""
    if handle.tiny_vae is not None and host.in_comfyui():
        decode = _tiny_vae_previewer(handle.tiny_vae)
    else:
        fmt = latent_format_name(pipe)
        decode = host.latent_previewer(fmt, handle.device) if fmt else None
    if decode is None:
        return None

    def previewer(latents):
        import torch

        with torch.no_grad():
            return decode(spatial_latents(pipe, latents.detach(), height, width))

    return within_budget(previewer, BUDGET)


def within_budget(decode, budget: float = BUDGET, clock=time.perf_counter):
    """``decode`` called only while the time spent previewing stays within ``budget`` of the time
    spent denoising since the run started (skipped steps still report progress, without a
    picture). ComfyUI's latent2rgb costs far less than that and previews every step; a tiny-VAE
    decode that costs more than ``budget`` of a step previews every few steps instead."""
    start, spent = clock(), [0.0]

    def preview(latents):
        began = clock()
        if spent[0] > budget * max(began - start - spent[0], 0.0):
            return None
        try:
            return decode(latents)
        except Exception:  # noqa: BLE001 - a preview must never fail the generation
            log.debug("preview failed", exc_info=True)
            return None
        finally:
            spent[0] += clock() - began

    return preview
