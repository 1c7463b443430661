"""One generation call: txt2img / img2img / inpaint / edit on a PipelineHandle.

- Seeds: image ``i`` of a batch uses a CPU ``torch.Generator`` seeded ``seed + i`` (mod 2**64),
  so image ``i`` equals a batch-1 run with that seed, on any device.
- Input images whose sides are not multiples of 8 are resized (bilinear) to the nearest
  multiple of 8 for the pipeline, and the result is resized back: outputs always have the
  input's size.
- Masks: ComfyUI's convention, 1 = repaint (diffusers binarizes at 0.5).
- What keeps unmasked pixels: no pipeline mode does exactly (the VAE round trip changes every
  pixel a little; the 4-channel fallback blends latents, the 9-channel model sees the masked
  image). ``preserve_unmasked`` (default on) pastes the original pixels back where the mask is
  0, with an optional feather that fades inside the mask only, so unmasked pixels are exact.
- Each run gets a fresh scheduler (a cancelled run leaves nothing behind), reports progress per
  step, checks Cancel between steps, re-decodes in fp32 when an fp16/bf16 VAE gives NaN, and
  turns out-of-memory into a message naming what to lower.
"""
from __future__ import annotations

import gc
import logging
from dataclasses import dataclass

from .. import faults, host
from ..images import check_image, check_mask, from_nchw
from . import prompt_embeds as pe_mod
from .preview import make_previewer
from .schedulers import make_scheduler
from .speed import step_cache

log = logging.getLogger(__name__)
MAX_SEED = 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True)
class GenerateRequest:
    positive: str = ""
    negative: str = ""
    seed: int = 0
    steps: int = 20
    cfg: float = 7.0
    width: int = 512
    height: int = 512
    batch_size: int = 1
    strength: float = 0.6
    image_guidance_scale: float = 1.5
    clip_skip: int = 0
    preserve_unmasked: bool = True
    feather: int = 0


def check_multiple_of_8(name: str, value: int) -> int:
    value = int(value)
    if value < 8 or value % 8:
        low, high = max(8, value - value % 8), value - value % 8 + 8
        options = f"{low} or {high}" if low != high and value >= 8 else f"{high}"
        raise ValueError(f"{name} must be a multiple of 8, got {value}: use {options}")
    return value


def _check_request(req: GenerateRequest, needs_strength: bool) -> None:
    if int(req.steps) < 1:
        raise ValueError(f"steps must be at least 1, got {req.steps}")
    if int(req.batch_size) < 1:
        raise ValueError(f"batch_size must be at least 1, got {req.batch_size}")
    if not req.cfg == req.cfg or req.cfg < 0:
        raise ValueError(f"cfg must be >= 0, got {req.cfg}")
    if needs_strength and not 0.0 < float(req.strength) <= 1.0:
        raise ValueError(f"strength must be in (0, 1], got {req.strength}: use e.g. 0.5 for a moderate change")
    if needs_strength and int(int(req.steps) * float(req.strength)) < 1:
        raise ValueError(
            f"strength {req.strength} x steps {req.steps} leaves no denoising step: raise steps to at least "
            f"{int(1 / float(req.strength)) + 1} or raise strength"
        )
    if not 0 <= int(req.seed) <= MAX_SEED:
        raise ValueError(f"seed must be in 0..{MAX_SEED}, got {req.seed}")


def generators(seed: int, n: int):
    import torch

    return [torch.Generator(device="cpu").manual_seed((int(seed) + i) % (MAX_SEED + 1)) for i in range(n)]


def _resize(t, h, w, mode="bilinear"):
    import torch.nn.functional as F

    if t.shape[-2:] == (h, w):
        return t
    return F.interpolate(t, size=(h, w), mode=mode, align_corners=False) if mode != "nearest" else F.interpolate(t, size=(h, w), mode=mode)


def _nearest8(v: int) -> int:
    return max(8, int(round(v / 8.0)) * 8)


def _feathered(mask, feather: int):
    """[B,1,H,W] mask faded inward by ``feather`` px; exactly 0 wherever the mask is 0."""
    import torch
    import torch.nn.functional as F

    if feather <= 0:
        return mask
    k = 2 * int(feather) + 1
    blurred = F.avg_pool2d(F.pad(mask, (feather,) * 4, mode="replicate"), k, stride=1)
    return torch.minimum(mask, blurred)


def _prompt_kwargs(pipe, req: GenerateRequest, cfg: float, cache=pe_mod.EMBEDDING_CACHE) -> dict:
    if pe_mod.supports_weighted_sdxl(pipe):
        pe, npe, pooled, npooled = cache.get_sdxl(pipe, req.positive, req.negative, req.clip_skip)
        return {"prompt_embeds": pe, "negative_prompt_embeds": npe,
                "pooled_prompt_embeds": pooled, "negative_pooled_prompt_embeds": npooled}
    if pe_mod.supports_weighted(pipe):
        pe, npe = cache.get(pipe, req.positive, req.negative, req.clip_skip)
        return {"prompt_embeds": pe, "negative_prompt_embeds": npe}
    if pe_mod.has_weights(req.positive) or pe_mod.has_weights(req.negative):
        log.warning("%s has no CLIP text encoder the pack can weight: prompt weights are ignored", type(pipe).__name__)
    kwargs = {"prompt": pe_mod.plain_text(req.positive)}
    if cfg > 1 and req.negative:
        kwargs["negative_prompt"] = pe_mod.plain_text(req.negative)
    if req.clip_skip:
        kwargs["clip_skip"] = req.clip_skip
    return kwargs


def decode_latents(handle, pipe, latents):
    """Latents -> [B,3,H,W] in 0..1, as the pipeline would; fp32 re-decode if fp16 gives NaN."""
    import torch

    vae = handle.tiny_vae if handle.tiny_vae_decode and handle.tiny_vae is not None else pipe.vae
    with torch.no_grad():
        image = _vae_decode(vae, latents)
        if not torch.isfinite(image).all() and vae.dtype in (torch.float16, torch.bfloat16):
            log.warning("the %s VAE decoded NaN/inf: decoding again in fp32 (set dtype fp32 or use an fp16-fixed VAE to avoid this)", vae.dtype)
            original = vae.dtype
            vae.to(torch.float32)
            try:
                image = _vae_decode(vae, latents.float())
            finally:
                vae.to(original)
        if not torch.isfinite(image).all():
            raise ValueError(
                "the pipeline produced NaN/inf pixels (the latents diverged): lower cfg or the prompt "
                "weights, or load the pipeline with dtype fp32"
            )
    return pipe.image_processor.postprocess(image, output_type="pt")


def _vae_decode(vae, latents):
    config = vae.config
    latents = latents.to(device=vae.device, dtype=vae.dtype)
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    if mean is not None and std is not None:
        import torch

        mean = torch.tensor(mean).view(1, -1, 1, 1).to(latents)
        std = torch.tensor(std).view(1, -1, 1, 1).to(latents)
        latents = latents * std / config.scaling_factor + mean
    else:
        latents = latents / config.scaling_factor
    return vae.decode(latents, return_dict=False)[0]


def _is_oom(exc: BaseException) -> bool:
    return faults.is_oom(exc)  # one rule for every device (CPU allocator wording included)


def run(handle, mode: str, req: GenerateRequest, image=None, mask=None):
    """Run one generation; returns (IMAGE float32 [N,H,W,3] CPU, seed)."""
    import torch

    if mode not in ("txt2img", "img2img", "inpaint", "edit"):
        raise ValueError(f"mode must be txt2img, img2img, inpaint or edit, got {mode!r}")
    if mode == "edit":
        mode = "inpaint" if mask is not None else "img2img"
    _check_request(req, needs_strength=mode != "txt2img" and handle.variant != "instruct")
    handle.ensure_device()
    family = handle.variant
    batch = int(req.batch_size)
    extra: dict = {}
    orig = None
    if mode == "txt2img":
        height, width = check_multiple_of_8("height", req.height), check_multiple_of_8("width", req.width)
        n_prompts = 1
        if family == "instruct":
            raise ValueError(f"{handle.name} is an InstructPix2Pix-type pipeline: it edits images; use Enhance or Edit with an input image")
        if family == "inpaint":
            extra = {"image": torch.zeros(1, 3, height, width), "mask_image": torch.ones(1, 1, height, width), "strength": 1.0}
    else:
        if image is None:
            raise ValueError(f"{mode} needs an input image: connect an IMAGE")
        orig = check_image(image).permute(0, 3, 1, 2)  # [B,3,H,W]
        b, _, h0, w0 = orig.shape
        height, width = _nearest8(h0), _nearest8(w0)
        pixels = _resize(orig, height, width).repeat_interleave(batch, dim=0)
        n_prompts = b * batch  # one prompt per output image: image i*batch+j is input i, seed + i*batch + j
        if mode == "inpaint":
            m = check_mask(mask, h0, w0, b).unsqueeze(1)  # [B,1,H,W]
            if float(m.max()) <= 0.0:
                raise ValueError("mask is empty (all 0): paint the region to repaint (1 = repaint), or use Enhance for the whole image")
            full_mask = m.repeat_interleave(batch, dim=0)
        else:
            full_mask = None
        if family == "instruct":
            extra = {"image": pixels, "image_guidance_scale": float(req.image_guidance_scale)}
        elif mode == "inpaint" or family == "inpaint":
            mask_in = _resize(full_mask, height, width) if full_mask is not None else torch.ones(n_prompts, 1, height, width)
            extra = {"image": pixels, "mask_image": mask_in, "strength": float(req.strength)}
            mode = "inpaint"
        else:
            extra = {"image": pixels, "strength": float(req.strength)}
    pipe = handle.pipeline("inpaint" if family == "inpaint" else ("img2img" if family == "instruct" else mode))
    pipe.scheduler = make_scheduler(handle.scheduler, handle.pipe.scheduler)
    cfg = float(req.cfg)
    kwargs = _prompt_kwargs(pipe, req, cfg)
    if n_prompts > 1:
        kwargs = {k: (v.repeat(n_prompts, *[1] * (v.dim() - 1)) if hasattr(v, "repeat") else [v] * n_prompts)
                  if "prompt" in k else v for k, v in kwargs.items()}
    per_prompt = batch if orig is None else 1
    bar = host.progress(int(req.steps), label="generate")
    previewer = make_previewer(handle, pipe, height, width)

    def on_step_end(p, step, timestep, callback_kwargs):
        total = getattr(p, "_num_timesteps", None) or int(req.steps)
        bar.update_absolute(step + 1, total, previewer(callback_kwargs["latents"]) if previewer is not None else None)
        host.check_interrupt()
        return callback_kwargs

    host.check_interrupt()
    failed_oom = False
    try:
        faults.maybe_raise("oom")
        with step_cache(pipe, handle.speed.step_cache_interval):
            latents = pipe(
                **kwargs, **extra, height=height, width=width, num_inference_steps=int(req.steps),
                guidance_scale=cfg, num_images_per_prompt=per_prompt, generator=generators(req.seed, n_prompts * per_prompt),
                output_type="latent", callback_on_step_end=on_step_end, return_dict=False,
            )[0]
        out = decode_latents(handle, pipe, latents)
    except Exception as exc:  # noqa: BLE001 - OOM is translated, the rest re-raised
        if not _is_oom(exc):
            raise
        failed_oom = True
    if failed_oom:
        latents = out = None
        gc.collect()
        host.empty_cache()
        raise ValueError(
            f"out of memory generating {batch} x {width}x{height} on {handle.device}: lower batch_size or "
            "width/height, or load the pipeline with VAE tiling and attention slicing on (or CPU offload standalone)"
        )
    out = out.float().cpu()
    if orig is not None:
        out = _resize(out, orig.shape[2], orig.shape[3])
        if full_mask is not None and req.preserve_unmasked:
            soft = _feathered(full_mask, int(req.feather))
            out = orig.repeat_interleave(batch, dim=0) * (1 - soft) + out * soft
    return from_nchw(out), int(req.seed)
