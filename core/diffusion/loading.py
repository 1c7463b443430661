"""Load diffusers pipelines (folders, single-file checkpoints, repo ids) into a ``PipelineHandle``.

Weights are cached in MODEL_CACHE by (source, dtype, device, config, CPU offload); the
scheduler, the tiny VAE and the other speed switches are NOT part of the key: the handle names
the scheduler (every run builds a fresh one from the saved config) and its speed switches,
which ``ensure_device`` sets on the shared pipeline in place (toggling one never reloads).

Model families (``PipelineHandle.family``: 'sd1', 'sdxl', 'flux'...) and their defaults are in
``families.py``. Variants (``PipelineHandle.variant``):
- ``standard``: 4-channel UNet (SD 1.x/2.x, SDXL, and whatever AutoPipeline maps). txt2img /
  img2img / inpaint are derived with ``AutoPipelineFor*.from_pipe`` (shared modules);
  inpaint on a 4-channel UNet is diffusers' latent-blend fallback.
- ``inpaint``: 9-channel inpaint UNet. Every mode runs through the inpaint pipeline: txt2img
  with a full mask over a black image at strength 1, img2img with a full mask at the strength.
- ``instruct``: InstructPix2Pix-type (8-channel UNet, image guidance). img2img/edit only.
- ``fill`` / ``kontext`` (FLUX.1), ``edit`` (Qwen-Image-Edit), ``klein`` (FLUX.2 Klein): see
  ``families.route`` for what each mode runs.

Single files: SD 1.x/2.x/SDXL files are whole pipelines (``from_single_file`` with the configs from
``config`` or the HF cache). Other families' files (FLUX, SD3, Qwen-Image, Z-Image, Chroma, Sana)
are loaded as the transformer only (``<Transformer>.from_single_file``) into the diffusers folder
chosen in ``config``, which supplies the text encoders, VAE and scheduler: offline, diffusers can
neither infer nor download those.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import hf_loading, host, model_cache
from ..constants import DIFFUSERS_SUBFOLDERS
from ..model_cache import MODEL_CACHE, CacheKey
from . import families, qwen_processor
from .schedulers import AS_SAVED, check_scheduler_name
from .speed import SpeedOptions, apply_speed, check_step_cache

log = logging.getLogger(__name__)

CHECKPOINT_EXTS = (".safetensors",) + hf_loading.PICKLE_SUFFIXES
AUTO_CONFIG = "(auto: HF cache)"
MODES = ("txt2img", "img2img", "inpaint")
_SUBFOLDERS = DIFFUSERS_SUBFOLDERS


@dataclass(frozen=True, eq=False)
class PipelineHandle:
    """What travels on an LLMA_PIPELINE socket."""

    pipe: Any  # the loaded base pipeline (weights owner)
    name: str
    source: str
    device: Any
    dtype: Any
    family: str = "sd1"  # families.FAMILIES key: sd1 | sd2 | sdxl | sd3 | flux | flux2 | qwen-image | z-image | chroma | sana
    variant: str = "standard"  # families.VARIANTS: standard | inpaint | instruct | fill | kontext | edit
    scheduler: str = AS_SAVED
    tiny_vae: Any = None  # AutoencoderTiny for previews (and decode when tiny_vae_decode)
    tiny_vae_decode: bool = False
    speed: SpeedOptions = SpeedOptions()
    cache_key: Any = None

    @property
    def tokenizer(self):
        return getattr(self.pipe, "tokenizer", None)

    @property
    def spec(self) -> families.FamilySpec:
        """The family's table row: prompt target, token budget, default steps/cfg, resolution multiple."""
        return families.spec(self.family)

    def text_tokenizers(self) -> list:
        """``(attribute, kind, tokenizer, max_length)`` per text encoder (see families.text_tokenizers)."""
        return families.text_tokenizers(self.pipe, self.family)

    @property
    def prompt_tokenizer(self):
        """The tokenizer that reads the long prompt (T5 for FLUX/SD3, Qwen for Qwen-Image...; CLIP for SD)."""
        return families.prompt_tokenizer(self.pipe, self.family)

    def ensure_device(self) -> None:
        """Before a run: reload the weights if ComfyUI (or keep_loaded off) unloaded them, load them
        through ComfyUI's memory manager, set this handle's speed switches on the shared pipeline
        in place, and move the weights back to the chosen device if the model cache offloaded them
        (never with CPU offload, whose hooks own placement)."""
        model_cache.prepare(self.pipe)
        if self.tiny_vae is not None:
            model_cache.prepare(self.tiny_vae)
        applied = apply_speed(self.pipe, self.speed, self.device)
        if applied:
            log.debug("speed switches on %s: %s", self.name, ", ".join(applied))
        if self.speed.cpu_offload or getattr(self.device, "type", "cpu") == "cpu":
            return
        unet = getattr(self.pipe, "unet", None) or getattr(self.pipe, "transformer", None)
        param = next(unet.parameters(), None) if unet is not None else None
        if param is not None and param.device.type != self.device.type:
            self.pipe.to(self.device)

    def with_scheduler(self, scheduler: str) -> "PipelineHandle":
        return replace(self, scheduler=check_scheduler_name(scheduler))

    def route(self, mode: str) -> tuple[str, str]:
        """``(diffusers class or families.SELF, call style)`` serving ``mode``; ValueError naming what to load."""
        try:
            return families.route(self.family, self.variant, mode)
        except ValueError as exc:
            raise ValueError(f"{self.name}: {exc}") from None

    def pipeline(self, mode: str):
        """The pipeline for ``mode`` (txt2img, img2img, inpaint), sharing the base's modules (``from_pipe``)."""
        cls_name, _ = self.route(mode)
        derived = self.pipe.__dict__.setdefault("_llma_derived", {})
        if mode in derived:
            return derived[mode]
        import diffusers

        if cls_name in (families.SELF, type(self.pipe).__name__):
            pipe = self.pipe
        else:
            auto = {"txt2img": "AutoPipelineForText2Image", "img2img": "AutoPipelineForImage2Image",
                    "inpaint": "AutoPipelineForInpainting"}[mode]
            try:
                pipe = getattr(diffusers, auto if cls_name == families.AUTO else cls_name).from_pipe(self.pipe)
            except (ValueError, KeyError, AttributeError, TypeError) as exc:
                raise ValueError(f"{self.name} ({type(self.pipe).__name__}) has no {mode} pipeline in diffusers: {exc}") from exc
        pipe.set_progress_bar_config(disable=True)
        derived[mode] = pipe
        return pipe


# ---------------------------------------------------------------- helpers
def _unet_in_channels(pipe) -> int:
    unet = getattr(pipe, "unet", None)
    return int(getattr(getattr(unet, "config", None), "in_channels", 4) or 4)


def variant_of(pipe) -> str:
    variant = families.variant_from_class_name(type(pipe).__name__)
    if variant == "standard" and _unet_in_channels(pipe) == 9:
        return "inpaint"
    return variant


def _checkpoint_info(path: Path) -> tuple[bool, bool]:
    """(is_sdxl, is_inpaint) from the single file's tensor names and shapes (no weights read)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
        sdxl = any(k.startswith("conditioner.embedders.1.") for k in keys)
        first = "model.diffusion_model.input_blocks.0.0.weight"
        inpaint = first in keys and f.get_slice(first).get_shape()[1] == 9
    return sdxl, inpaint


def hf_cache_dirs() -> list[Path]:
    """``hf-cache/hub`` folders next to the checkpoints folders (the models root)."""
    found = []
    for folder in host.model_folders("checkpoints"):
        candidate = folder.parent / "hf-cache" / "hub"
        if candidate.is_dir() and candidate not in found:
            found.append(candidate)
    return found


def resolve_pipeline_source(model: str, allow_download: bool) -> tuple[str, str]:
    """(kind, source): kind is 'folder', 'single_file' or 'repo'."""
    model = (model or "").strip()
    if model.lower().endswith(CHECKPOINT_EXTS):
        path = host.resolve_model("checkpoints", model)
        hf_loading.check_safe_folder(path)
        return "single_file", str(path)
    try:
        path = host.resolve_model("diffusers", model)
    except FileNotFoundError:
        path = None
    if path is not None:
        hf_loading.check_safe_folder(path)
        for sub in _SUBFOLDERS:
            if (path / sub).is_dir():
                hf_loading.check_safe_folder(path / sub)
        return "folder", str(path)
    return "repo", hf_loading.resolve_source("diffusers", model, allow_download)


def _single_file_family(path: Path, config_dir: str) -> str:
    """Family of a single file: from the config folder's model_index.json, else from its tensor names."""
    if config_dir:
        return families.family_from_class_name(describe_config_files(config_dir).get("_class_name", "")) or "other"
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = {k.removeprefix("model.diffusion_model.") for k in f.keys()}
    if any(k.startswith("distilled_guidance_layer.") for k in keys):
        return "chroma"
    if any(k.startswith(("double_blocks.", "single_transformer_blocks.")) for k in keys):
        return "flux"
    if any(k.startswith("joint_blocks.") for k in keys):
        return "sd3"
    if any(k.startswith(("transformer_blocks.", "noise_refiner.", "layers.")) for k in keys):
        return "other"
    return "sd1"


def _load_denoiser_file(path: str, config_dir: str, family: str, dtype, local_only: bool):
    """A transformer single file (FLUX, SD3, Qwen-Image, Z-Image, Chroma, Sana...) + the rest of the
    pipeline (text encoders, VAE, scheduler) from a diffusers folder of the same model."""
    import diffusers

    name = Path(path).name
    if not config_dir:
        label = families.FAMILIES[family].label if family != "other" else "transformer"
        raise ValueError(
            f"single-file checkpoint {name} looks like a {label} checkpoint: such files hold the transformer, and "
            "diffusers needs the text encoders, VAE and configs from a diffusers folder of the same model, which it "
            "cannot infer or fetch offline: choose that folder (in models/diffusers) in 'config'")
    index = describe_config_files(config_dir)
    component = next((k for k in ("transformer", "unet") if isinstance(index.get(k), list)), None)
    if component is None or not hasattr(diffusers, index.get("_class_name", "")):
        raise ValueError(f"config {Path(config_dir).name} is not a diffusers pipeline folder with a transformer "
                         f"(model_index.json: {index.get('_class_name')!r}): choose the diffusers folder of the same model")
    model_cls = getattr(diffusers, index[component][1])
    dtype_arg = hf_loading.dtype_kwarg("diffusers", dtype)
    try:
        model = model_cls.from_single_file(path, config=config_dir, subfolder=component, local_files_only=True,
                                           **dtype_arg)
        return getattr(diffusers, index["_class_name"]).from_pretrained(
            config_dir, **{component: model}, **dtype_arg, local_files_only=True, use_safetensors=True)
    except (IndexError, KeyError) as exc:
        if hf_loading.version_at_least("diffusers", "0.35.0"):
            raise ValueError(f"could not load single-file checkpoint {name} as the {component} of "
                             f"{Path(config_dir).name} ({index['_class_name']}): {exc!r}") from exc
        raise hf_loading.DependencyTooOld(
            f"single-file checkpoint {name} is not in the original {model_cls.__name__} layout that diffusers "
            f"{hf_loading.installed_version('diffusers')} converts (a file in diffusers' own layout needs "
            "diffusers>=0.35.0): run 'python -m pip install -U diffusers' with ComfyUI's Python, or load the "
            "diffusers folder itself") from exc
    except (OSError, ValueError, RuntimeError) as exc:
        raise ValueError(f"could not load single-file checkpoint {name} as the {component} of "
                         f"{Path(config_dir).name} ({index['_class_name']}): {exc}") from exc


def _load_single_file(path: str, config: str, dtype, local_only: bool):
    import diffusers

    config_dir = str(host.resolve_model("diffusers", config)) if config and config != AUTO_CONFIG else ""
    family = _single_file_family(Path(path), config_dir)
    if family not in families.SD_FAMILIES:
        return _load_denoiser_file(path, config_dir, family, dtype, local_only)
    sdxl, inpaint = _checkpoint_info(Path(path))
    cls_name = ("StableDiffusionXL" if sdxl else "StableDiffusion") + ("InpaintPipeline" if inpaint else "Pipeline")
    cls = getattr(diffusers, cls_name)
    kwargs: dict = {**hf_loading.dtype_kwarg("diffusers", dtype), "local_files_only": local_only}
    if config and config != AUTO_CONFIG:
        kwargs["config"] = str(host.resolve_model("diffusers", config))
    else:
        caches = hf_cache_dirs()
        if caches:
            kwargs["cache_dir"] = str(caches[0])
    try:
        return cls.from_single_file(path, **kwargs)
    except (OSError, ValueError, EnvironmentError) as exc:
        text = str(exc)
        if "config" in kwargs or not any(s in text.lower() for s in ("offline", "local", "connect", "snapshot", "find", "cache")):
            raise ValueError(f"could not load single-file checkpoint {Path(path).name} as {cls_name}: {text}") from exc
        family = "stable-diffusion-xl-base-1.0" if sdxl else ("stable-diffusion-inpainting" if inpaint else "stable-diffusion-v1-5")
        raise ValueError(
            f"single-file checkpoint {Path(path).name} needs its model config, which is not available offline: "
            f"choose a diffusers folder of the same family ({family}) in 'config' (put one in models/diffusers), "
            f"or put the Hugging Face cache snapshot of its config repo in models/hf-cache/hub, "
            f"or switch 'allow download' on"
        ) from exc


def _loader(kind: str, source: str, config: str, options, speed: SpeedOptions, device, dtype):
    def load():
        import diffusers

        local_only = not options.allow_download or hf_loading.hub_offline()
        if kind == "single_file":
            pipe = _load_single_file(source, config, dtype, local_only)
        else:
            hf_loading.require_class("diffusers", source)
            try:
                pipe = diffusers.DiffusionPipeline.from_pretrained(
                    source, **hf_loading.dtype_kwarg("diffusers", dtype), local_files_only=local_only, use_safetensors=True,
                    **qwen_processor.override(source),  # Qwen-Image-Edit without torchvision
                )
            except Exception as exc:  # noqa: BLE001 - translated below
                raise hf_loading.translate_load_error(exc, source) from exc
        if variant_of(pipe) == "inpaint" and "Inpaint" not in type(pipe).__name__:
            pipe = diffusers.AutoPipelineForInpainting.from_pipe(pipe)
        if not speed.cpu_offload or device.type != "cuda" or host.in_comfyui():
            pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        return pipe  # speed switches are set in place when a run starts (PipelineHandle.ensure_device)

    return load


def load_tiny_vae(name: str, device, dtype, keep_loaded: bool = True):
    """AutoencoderTiny (TAESD) from models/vae_approx, cached."""

    hf_loading.require_versions("diffusers")
    path = host.resolve_model("vae_approx", name)
    hf_loading.check_safe_folder(path)
    key = CacheKey("tiny_vae", str(path), hf_loading.dtype_name(dtype), str(device))

    def load():
        from diffusers import AutoencoderTiny

        return AutoencoderTiny.from_pretrained(
            str(path), **hf_loading.dtype_kwarg("diffusers", dtype), use_safetensors=True).to(device).eval()

    return MODEL_CACHE.get_or_load(key, load, keep_loaded=keep_loaded, offload=lambda v: v.to("cpu"))


def load_pipeline(
    model: str,
    *,
    options=None,
    config: str = "",
    scheduler: str = AS_SAVED,
    speed: SpeedOptions | None = None,
    tiny_vae: str = "",
    tiny_vae_decode: bool = False,
) -> PipelineHandle:
    """Load (or fetch from the cache) a pipeline and wrap it in a handle."""
    hf_loading.require_versions("diffusers", "transformers", "accelerate", "huggingface_hub", "safetensors")
    options = options or hf_loading.LoadOptions()
    speed = speed or SpeedOptions()
    check_scheduler_name(scheduler)
    check_step_cache(speed.step_cache_interval)
    if speed.cpu_offload and host.in_comfyui():
        log.warning("CPU offload is ignored inside ComfyUI: ComfyUI's model management owns VRAM")
        speed = replace(speed, cpu_offload=False)
    kind, source = resolve_pipeline_source(model, options.allow_download)
    if kind != "single_file":  # a component asking for custom code (auto_map) is refused, as by the other loaders
        hf_loading.check_remote_code(source, options.trust_remote_code)
    device = hf_loading.resolve_device(options.device)
    dtype = hf_loading.resolve_dtype(options.dtype, device)
    cfg = config if kind == "single_file" and config and config != AUTO_CONFIG else ""
    key = CacheKey("pipeline", source, hf_loading.dtype_name(dtype), str(device), (("config", cfg),) + speed.module_options())
    pipe = MODEL_CACHE.get_or_load(
        key, _loader(kind, source, cfg, options, speed, device, dtype), keep_loaded=options.keep_loaded,
        offload=lambda p: p.to("cpu"),
    )
    taesd = load_tiny_vae(tiny_vae, device, dtype, options.keep_loaded) if tiny_vae and tiny_vae != "none" else None
    if tiny_vae_decode and taesd is None:
        raise ValueError("'decode with tiny VAE' is on but no tiny VAE is chosen: pick a TAESD folder from models/vae_approx or switch it off")
    if tiny_vae_decode and families.family_of(pipe) not in families.SD_FAMILIES:
        raise ValueError(f"'decode with tiny VAE' works for SD 1.x/2.x/SDXL pipelines only; {Path(source).name} is "
                         f"{families.spec(families.family_of(pipe)).label}: switch it off")
    return PipelineHandle(
        pipe=pipe, name=Path(source).name if kind != "repo" else source, source=source, device=device, dtype=dtype,
        family=families.family_of(pipe) or "sd1", variant=variant_of(pipe), scheduler=scheduler, tiny_vae=taesd, tiny_vae_decode=bool(tiny_vae_decode),
        speed=speed, cache_key=key,
    )


def describe_config_files(path: str) -> dict:
    """model_index.json of a diffusers folder (for error messages and the loader's info)."""
    index = Path(path) / "model_index.json"
    return json.loads(index.read_text(encoding="utf-8")) if index.is_file() else {}
