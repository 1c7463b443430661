"""One generation call: txt2img / img2img / inpaint / edit on a PipelineHandle.

- Seeds: image ``i`` of a batch uses a CPU ``torch.Generator`` seeded ``seed + i`` (mod 2**64),
  so image ``i`` equals a batch-1 run with that seed, on any device.
- Input images whose sides are not multiples of the family's resolution multiple (8 for SD,
  16 for FLUX/SD3/Qwen-Image/Z-Image/Chroma, 32 for Sana) are resized (bilinear) to the nearest
  multiple for the pipeline, and the result is resized back: outputs always have the input's size.
- Families (families.py): each mode runs the family's pipeline (``families.route``) with its
  guidance kind (classic CFG, distilled guidance, Qwen-Image's true CFG), its max sequence length
  and plain prompt strings; only SD 1.x/2.x/SDXL get prompt-embedding weights and the pack's own
  latent decode. ``steps`` 0 and ``cfg`` < 0 mean the family's defaults.
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
import inspect
import logging
from dataclasses import dataclass, replace

from .. import faults, host
from ..images import check_image, check_mask, from_nchw, to_pil
from . import families
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


def check_multiple(name: str, value: int, multiple: int = 8) -> int:
    value, m = int(value), int(multiple)
    if value < m or value % m:
        low, high = max(m, value - value % m), value - value % m + m
        options = f"{low} or {high}" if low != high and value >= m else f"{high}"
        raise ValueError(f"{name} must be a multiple of {m}, got {value}: use {options}")
    return value


def check_multiple_of_8(name: str, value: int) -> int:
    return check_multiple(name, value, 8)


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


def _nearest(v: int, m: int = 8) -> int:
    return max(m, int(round(v / float(m))) * m)


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


def resolve_defaults(handle, req: GenerateRequest) -> GenerateRequest:
    """steps 0 -> the family's default steps; cfg < 0 -> the family's default guidance (families.py)."""
    steps, cfg = families.defaults(handle.family, handle.variant)
    changes = {}
    if int(req.steps) == 0:
        changes["steps"] = steps
    if req.cfg == req.cfg and float(req.cfg) < 0:
        changes["cfg"] = cfg
    return replace(req, **changes) if changes else req


def _edits_whole_image(handle) -> bool:
    """Edit with a mask: True when the pipeline has img2img but no inpaint mode (FLUX Kontext, FLUX.2,
    Chroma): it redraws the whole image and the mask only pastes the unmasked pixels back."""
    try:
        handle.route("inpaint")
        return False
    except ValueError:
        pass
    try:
        handle.route("img2img")
        return True
    except ValueError:
        return False


def family_kwargs(handle, pipe, req: GenerateRequest, cfg: float, height: int, width: int) -> dict:
    """Prompt and guidance arguments for a non-SD family (plain strings: only SD's CLIP path weights)."""
    import inspect

    spec = handle.spec
    if pe_mod.has_weights(req.positive) or pe_mod.has_weights(req.negative):
        log.warning("%s (%s) reads plain text: (term:1.2) weights are dropped (Build Prompt's natural target "
                    "turns weights into words)", handle.name, spec.label)
    negative = pe_mod.plain_text(req.negative)
    kwargs: dict = {"prompt": pe_mod.plain_text(req.positive)}
    if spec.guidance == "true_cfg":
        kwargs["true_cfg_scale"] = cfg
        if cfg > spec.cfg_off:
            kwargs["negative_prompt"] = negative or " "  # true CFG runs only with a negative prompt
    else:
        kwargs["guidance_scale"] = cfg
        if spec.negative and negative and cfg > spec.cfg_off:
            kwargs["negative_prompt"] = negative
        elif negative and not spec.negative:
            log.info("%s is guidance-distilled: the negative prompt is not used", spec.label)
    if spec.name != "other":  # other pipelines keep their own default length
        kwargs["max_sequence_length"] = spec.max_tokens
    if req.clip_skip:
        kwargs["clip_skip"] = req.clip_skip  # SD3 (its CLIP encoders); dropped below where not accepted
    kwargs["use_resolution_binning"] = False  # Sana: draw the asked size, not the nearest trained bin
    kwargs["_auto_resize"] = False  # FLUX Kontext: keep the input's size ...
    kwargs["max_area"] = height * width  # ... and the output's
    accepted = inspect.signature(type(pipe).__call__).parameters
    return {k: v for k, v in kwargs.items() if k in accepted}


def _check_finite(images):
    import torch

    if not torch.isfinite(images).all():
        raise ValueError("the pipeline produced NaN/inf pixels (the latents diverged): lower cfg, or load the "
                         "pipeline with dtype fp32 (or bf16 for families trained in it)")
    return images


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


@dataclass
class _Inputs:
    """What the pipeline call is given besides the prompt: size, per-image inputs, the originals."""

    height: int
    width: int
    n_prompts: int  # one prompt per input image and batch copy (txt2img: 1)
    extra: dict  # image / mask_image / strength / image_guidance_scale for the pipeline
    orig: object = None  # [B,3,H,W] input images (img2img, inpaint, edit)
    full_mask: object = None  # [B*batch,1,H,W] at the input size


def _resolve_mode(handle, mode: str, mask):
    """The pipeline mode to run and the mask it uses: Edit is inpaint with a mask, img2img without
    (an editing model edits the whole image; its mask only pastes back); Enhance ignores masks."""
    if mode not in ("txt2img", "img2img", "inpaint", "edit"):
        raise ValueError(f"mode must be txt2img, img2img, inpaint or edit, got {mode!r}")
    if mode == "edit":
        if mask is not None and not _edits_whole_image(handle):
            return "inpaint", mask
        return "img2img", mask
    return mode, (None if mode == "img2img" else mask)


def _prepare_inputs(handle, mode: str, style: str, req: GenerateRequest, image, mask) -> _Inputs:
    """Check and size the input image and mask for the family's route ``style``."""
    import torch

    multiple, batch = handle.spec.multiple, int(req.batch_size)
    if mode == "txt2img":
        height, width = check_multiple("height", req.height, multiple), check_multiple("width", req.width, multiple)
        extra = {}
        if style == "full_mask":  # an inpaint-only family draws from scratch on a blank, fully masked image
            extra = {"image": torch.zeros(1, 3, height, width), "mask_image": torch.ones(1, 1, height, width), "strength": 1.0}
        return _Inputs(height, width, 1, extra)
    if image is None:
        raise ValueError(f"{mode} needs an input image: connect an IMAGE")
    orig = check_image(image).permute(0, 3, 1, 2)  # [B,3,H,W]
    b, _, h0, w0 = orig.shape
    height, width = _nearest(h0, multiple), _nearest(w0, multiple)
    pixels = _resize(orig, height, width).repeat_interleave(batch, dim=0)
    n_prompts = b * batch  # one prompt per output image: image i*batch+j is input i, seed + i*batch + j
    if mode == "inpaint" and mask is None:
        raise ValueError("inpaint needs a mask (1 = repaint): connect a MASK")
    full_mask = None
    if mask is not None:
        m = check_mask(mask, h0, w0, b).unsqueeze(1)  # [B,1,H,W]
        if float(m.max()) <= 0.0:
            raise ValueError("mask is empty (all 0): paint the region to repaint (1 = repaint), or use Enhance for the whole image")
        full_mask = m.repeat_interleave(batch, dim=0)
    if style == "reference":
        extra = {"image": pixels}
        if handle.family == "flux2" or handle.variant == "edit":  # FLUX.2, Qwen-Image-Edit: PIL references
            if b > 1:
                raise ValueError(f"{handle.spec.label} reads its input images as references for one picture: connect "
                                 f"one image (got a batch of {b}); use batch_size for several results")
            extra = {"image": to_pil(from_nchw(pixels[:1]))}
        if handle.variant == "instruct":
            extra["image_guidance_scale"] = float(req.image_guidance_scale)
    elif style in ("mask", "full_mask"):
        mask_in = _resize(full_mask, height, width) if style == "mask" else torch.ones(n_prompts, 1, height, width)
        extra = {"image": pixels, "mask_image": mask_in, "strength": float(req.strength)}
        if handle.variant == "edit":  # QwenImageEditInpaintPipeline reads the image's size: PIL images
            extra["image"] = to_pil(from_nchw(pixels))
    else:
        extra = {"image": pixels, "strength": float(req.strength)}
    return _Inputs(height, width, n_prompts, extra, orig, full_mask)


def _encode_prompt(handle, pipe, req: GenerateRequest, inputs: _Inputs) -> dict:
    """The prompt arguments: weighted embeddings for SD families, the family's own otherwise;
    repeated once per input image."""
    cfg = float(req.cfg)
    if handle.family in families.SD_FAMILIES:
        kwargs = {**_prompt_kwargs(pipe, req, cfg), "guidance_scale": cfg}
    else:
        kwargs = family_kwargs(handle, pipe, req, cfg, inputs.height, inputs.width)
    if inputs.n_prompts > 1:
        n = inputs.n_prompts
        kwargs = {k: (v.repeat(n, *[1] * (v.dim() - 1)) if hasattr(v, "repeat") else [v] * n) if "prompt" in k else v
                  for k, v in kwargs.items()}
    return kwargs


def _denoise_and_decode(handle, pipe, req: GenerateRequest, inputs: _Inputs, prompt_kwargs: dict):
    """The pipeline call with progress, previews and Cancel per step; [N,3,H,W] pixels in 0..1.
    Out of memory becomes a message naming what to lower, after the memory is released."""
    sd_family = handle.family in families.SD_FAMILIES
    per_prompt = int(req.batch_size) if inputs.orig is None else 1
    bar = host.progress(int(req.steps), label="generate")
    previewer = make_previewer(handle, pipe, inputs.height, inputs.width)

    def on_step_end(p, step, timestep, callback_kwargs):
        total = getattr(p, "_num_timesteps", None) or int(req.steps)
        bar.update_absolute(step + 1, total, previewer(callback_kwargs["latents"]) if previewer is not None else None)
        host.check_interrupt()
        return callback_kwargs

    size = {"height": inputs.height, "width": inputs.width}
    if "height" not in inspect.signature(type(pipe).__call__).parameters:
        size = {}  # e.g. SD3 img2img before diffusers 0.32: the size comes from the input image
    host.check_interrupt()
    failed_oom = False
    try:
        faults.maybe_raise("oom")
        with step_cache(pipe, handle.speed.step_cache_interval):
            latents = pipe(
                **prompt_kwargs, **inputs.extra, **size,
                num_inference_steps=int(req.steps), num_images_per_prompt=per_prompt,
                generator=generators(req.seed, inputs.n_prompts * per_prompt),
                output_type="latent" if sd_family else "pt", callback_on_step_end=on_step_end, return_dict=False,
            )[0]
        out = decode_latents(handle, pipe, latents) if sd_family else _check_finite(latents)
    except Exception as exc:  # noqa: BLE001 - OOM is translated, the rest re-raised
        if not _is_oom(exc):
            raise
        failed_oom = True
    if failed_oom:  # outside the except block, so the traceback no longer holds the step's tensors
        latents = out = None
        gc.collect()
        host.empty_cache()
        raise ValueError(
            f"out of memory generating {req.batch_size} x {inputs.width}x{inputs.height} on {handle.device}: lower "
            "batch_size or width/height, or load the pipeline with VAE tiling and attention slicing on (or CPU "
            "offload standalone)"
        )
    return out.float().cpu()


def _paste_back(out, inputs: _Inputs, req: GenerateRequest):
    """Back to the input's size; with preserve_unmasked, the unmasked pixels exactly as they were."""
    if inputs.orig is None:
        return out
    out = _resize(out, inputs.orig.shape[2], inputs.orig.shape[3])
    if inputs.full_mask is not None and req.preserve_unmasked:
        soft = _feathered(inputs.full_mask, int(req.feather))
        out = inputs.orig.repeat_interleave(int(req.batch_size), dim=0) * (1 - soft) + out * soft
    return out


def saved_scheduler(pipe):
    """The scheduler the cached pipeline was loaded with. Each run sets a fresh scheduler on the
    pipeline, so without this a node that chose DPM++ would turn every later 'as saved' run of the
    same cached pipeline into DPM++ too."""
    saved = getattr(pipe, "_llma_saved_scheduler", None)
    if saved is None:
        saved = pipe.scheduler
        object.__setattr__(pipe, "_llma_saved_scheduler", saved)  # not a pipeline component: keep it out of its config
    return saved


def run(handle, mode: str, req: GenerateRequest, image=None, mask=None):
    """Run one generation; returns (IMAGE float32 [N,H,W,3] CPU, seed). Reads as its stages:
    route the mode, check the request, prepare the inputs, encode the prompt, denoise and
    decode, paste back."""
    mode, mask = _resolve_mode(handle, mode, mask)
    req = resolve_defaults(handle, req)
    _, style = handle.route(mode)
    _check_request(req, needs_strength=style in ("strength", "mask") or (style == "full_mask" and mode != "txt2img"))
    handle.ensure_device()
    inputs = _prepare_inputs(handle, mode, style, req, image, mask)
    pipe = handle.pipeline(mode)
    pipe.scheduler = make_scheduler(handle.scheduler, saved_scheduler(handle.pipe))  # fresh: Cancel never leaves it mid-state
    out = _denoise_and_decode(handle, pipe, req, inputs, _encode_prompt(handle, pipe, req, inputs))
    return from_nchw(_paste_back(out, inputs, req)), int(req.seed)
