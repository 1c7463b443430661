"""Image captioning G(F(x)): load a captioner and write one caption per image.

Supported folders (``models/LLM``, or a Hugging Face repo id with "allow download" on):

* anything transformers loads with ``AutoModelForImageTextToText`` + ``AutoProcessor``: BLIP,
  BLIP-2, GIT, InstructBLIP and chat VLMs (SmolVLM / Idefics3, Qwen2-VL / Qwen2.5-VL, LLaVA ...);
  a processor with a chat template gets the instruction as a chat message;
* ``VisionEncoderDecoderModel`` captioners (e.g. ViT + GPT-2), loaded with their image processor
  and tokenizer (AutoProcessor returns only the tokenizer for them).

What each instruction preset does per model family (see ``instruction_for``):

============  ==================================  ======================  ============================  ===========
preset        chat VLM / other prompted models    BLIP                    BLIP-2                        GIT, ViT-GPT2
============  ==================================  ======================  ============================  ===========
short         "Describe this image in one ..."    prefix "a picture of"   no prompt (plain caption)     no prompt
detailed      "Describe this image in detail..."  no prefix               "Question: ... Answer:"       no prompt
tags          "List the main visual elements..."  no prefix               "Question: ... Answer:"       no prompt
custom        the custom text                     the text as a prefix    the text as given             GIT: prefix
============  ==================================  ======================  ============================  ===========

BLIP and GIT are not instruction-following models: their text input is the start of the
caption, so only a caption-like prefix makes sense. ViT-GPT2 (VisionEncoderDecoder) ignores the
instruction. An echoed prompt or prefix is removed from the output.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from . import faults, hf_loading, host
from .constants import CAPTION_PRESETS
from .context_limits import clamp_new_tokens
from . import model_cache
from .model_cache import MODEL_CACHE
from .text_generation import clean_generated_text, make_stopping_criteria, sampling

log = logging.getLogger(__name__)

PRESETS = CAPTION_PRESETS
INSTRUCTIONS = {
    "short": "Describe this image in one short sentence.",
    "detailed": "Describe this image in detail: the subject, the setting, colours, lighting, style and composition.",
    "tags": "List the main visual elements of this image as short comma-separated tags.",
}
BLIP_SHORT_PREFIX = "a picture of"
SUPPORTED = ("BLIP, BLIP-2, GIT, InstructBLIP, chat VLMs such as SmolVLM, Qwen2-VL or LLaVA, "
             "and VisionEncoderDecoder captioners such as ViT-GPT2")


@dataclass(frozen=True)
class CaptionSettings:
    """How to caption: the instruction and the generation options."""

    preset: str = "short"
    custom_instruction: str = ""
    max_new_tokens: int = 40
    num_beams: int = 1
    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 0
    batch_size: int = 4

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"instruction preset must be one of {PRESETS}, got {self.preset!r}")
        if self.preset == "custom" and not self.custom_instruction.strip():
            raise ValueError("instruction preset is 'custom' but the custom instruction is empty: type one or pick another preset")
        for name, low in (("max_new_tokens", 1), ("num_beams", 1), ("batch_size", 1)):
            if int(getattr(self, name)) < low:
                raise ValueError(f"{name} must be at least {low}, got {getattr(self, name)!r}")
        if self.do_sample and not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise ValueError(f"sampling needs temperature > 0 and 0 < top_p <= 1, got {self.temperature} / {self.top_p}")


@dataclass(frozen=True, eq=False)
class Captioner:
    """A loaded captioner (the LLMA_CAPTIONER socket)."""

    model: Any
    processor: Any  # a ProcessorMixin, or None for VisionEncoderDecoder models
    tokenizer: Any
    image_processor: Any
    family: str  # "chat", "blip", "blip2", "git", "ved" or "prompted"
    name: str
    device: Any
    dtype: Any
    cache_key: Any = None
    quantized: str = "none"
    meta: dict = field(default_factory=dict, repr=False)

    def caption(self, images, settings: CaptionSettings = CaptionSettings(), on_batch=None) -> list[str]:
        return caption_images(self, images, settings, on_batch=on_batch)


# ------------------------------------------------------------------------- loading
def read_model_config(source: str, options: hf_loading.LoadOptions) -> dict:
    """config.json of a local folder (or, for a repo id, as transformers resolves it)."""
    path = Path(source)
    if path.is_dir():
        config_file = path / "config.json"
        if not config_file.is_file():
            raise ValueError(f"captioner folder {path} has no config.json: it is not a transformers model folder ({SUPPORTED})")
        return json.loads(config_file.read_text(encoding="utf-8"))
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=options.trust_remote_code,
                                            local_files_only=not options.allow_download or hf_loading.hub_offline())
    except Exception as exc:  # noqa: BLE001
        raise hf_loading.translate_load_error(exc, source) from exc
    return config.to_dict()


def detect_kind(config: dict, source: str, trust_remote_code: bool = False) -> str:
    """"ved" for VisionEncoderDecoder, "image-text-to-text" for the auto class; else a clear error."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    model_type = config.get("model_type")
    architectures = config.get("architectures") or []
    if model_type == "vision-encoder-decoder":
        return "ved"
    if model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        return "image-text-to-text"
    auto_map = config.get("auto_map") or {}
    if trust_remote_code and any(k in auto_map for k in ("AutoModelForImageTextToText", "AutoModelForVision2Seq")):
        return "image-text-to-text"
    hint = ""
    if any(a.endswith("ForCausalLM") for a in architectures):
        hint = " It looks like a text-only language model: load it with Load Language Model instead."
    elif model_type in ("clip", "siglip", "siglip2"):
        hint = " It looks like an image encoder: load it with Load Image Encoder (models/clip_vision) instead."
    elif "auto_map" in config and not trust_remote_code:
        hint = " It ships custom code (auto_map): switch 'trust remote code' on only if you trust it."
    raise ValueError(
        f"{source} is not a supported captioner: its config has model_type {model_type!r} and "
        f"architectures {architectures}. Use one of: {SUPPORTED}.{hint}"
    )


def _family(kind: str, model_type: str, processor) -> str:
    if kind == "ved":
        return "ved"
    if getattr(processor, "chat_template", None):
        return "chat"
    return {"blip": "blip", "blip-2": "blip2", "git": "git"}.get(model_type, "prompted")


def _load(source: str, options: hf_loading.LoadOptions, device, dtype, key) -> Captioner:
    from transformers import (AutoImageProcessor, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer,
                              VisionEncoderDecoderModel)
    from transformers.processing_utils import ProcessorMixin

    hf_loading.check_remote_code(source, options.trust_remote_code)
    hf_loading.require_class("transformers", source)
    config = read_model_config(source, options)
    kind = detect_kind(config, source, options.trust_remote_code)
    kwargs = hf_loading.from_pretrained_kwargs(options, dtype, device)
    small = {"local_files_only": kwargs["local_files_only"], "trust_remote_code": kwargs["trust_remote_code"]}
    processor = tokenizer = image_processor = None
    try:
        model_cls = VisionEncoderDecoderModel if kind == "ved" else AutoModelForImageTextToText
        model = model_cls.from_pretrained(source, **kwargs)
        if kind != "ved":
            processor = AutoProcessor.from_pretrained(source, **small)
            if not isinstance(processor, ProcessorMixin):  # e.g. VED-like models with a custom model_type
                processor = None
        if processor is None:
            image_processor = AutoImageProcessor.from_pretrained(source, **small)
            tokenizer = AutoTokenizer.from_pretrained(source, **small)
        else:
            tokenizer = getattr(processor, "tokenizer", None)
            image_processor = getattr(processor, "image_processor", None)
    except ValueError:
        raise  # already a clear message
    except Exception as exc:  # noqa: BLE001 - re-raised with a clearer message
        raise hf_loading.translate_load_error(exc, source) from exc
    # without a real processor (image processor + tokenizer only) a model is captioned like a VED one
    family = _family("ved" if processor is None else kind, config.get("model_type", ""), processor)
    if family == "chat" and tokenizer is not None:
        tokenizer.padding_side = "left"  # decoder-only batched generation needs left padding
    model = hf_loading.place_and_quantize(model, options, device, dtype)
    name = Path(source).name if Path(source).exists() else source
    log.info("captioner %s loaded as %s (%s)", name, family, type(model).__name__)
    return Captioner(model, processor, tokenizer, image_processor, family, name, device, _float_dtype(model),
                     key, options.quantization, {"model_type": config.get("model_type")})


def _float_dtype(model):
    import torch

    for param in model.parameters():
        if param.is_floating_point():
            return param.dtype
    return torch.float32


def load_captioner_from_source(source: str, options: hf_loading.LoadOptions = hf_loading.LoadOptions()) -> Captioner:
    """Load (or take from MODEL_CACHE) the captioner at a resolved folder path or repo id."""
    device, dtype, key = hf_loading.plan_load("captioner", str(source), options)
    offload = None if options.quantization.startswith("bnb") else _offload
    return MODEL_CACHE.get_or_load(key, lambda: _load(str(source), options, device, dtype, key),
                                   keep_loaded=options.keep_loaded, offload=offload)


def load_captioner(name: str, options: hf_loading.LoadOptions = hf_loading.LoadOptions()) -> Captioner:
    """Load a captioner by folder name under models/LLM, or by repo id when downloads are allowed."""
    return load_captioner_from_source(hf_loading.resolve_source("LLM", name, options.allow_download), options)


def _offload(captioner: Captioner) -> None:
    captioner.model.to("cpu")


def release(captioner: Captioner) -> None:
    """Drop the captioner from the cache unless it was loaded with keep_loaded."""
    if captioner.cache_key is not None:
        MODEL_CACHE.release(captioner.cache_key)


# ------------------------------------------------------------------------- prompts
def instruction_for(family: str, settings: CaptionSettings) -> str:
    """The text given to the model for ``settings.preset`` (see the table in the module docstring)."""
    custom = settings.custom_instruction.strip()
    preset = settings.preset
    if family == "ved":
        return ""
    if family == "blip":
        return BLIP_SHORT_PREFIX if preset == "short" else custom if preset == "custom" else ""
    if family == "git":
        return custom if preset == "custom" else ""
    text = custom if preset == "custom" else INSTRUCTIONS[preset]
    if family == "blip2":
        if preset == "short":
            return ""
        return text if preset == "custom" else f"Question: {text} Answer:"
    return text


def _model_inputs(captioner: Captioner, pil_images: list, instruction: str):
    """Processor outputs for one batch, and the prompt text echoed back by the model (if any)."""
    family = captioner.family
    if family == "ved" or captioner.processor is None:
        return captioner.image_processor(images=pil_images, return_tensors="pt"), ""
    processor = captioner.processor
    if family == "chat":
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        extra = {}
        bos = getattr(captioner.tokenizer, "bos_token", None)
        if bos and prompt.startswith(bos):  # the template already wrote BOS (as transformers does)
            extra["add_special_tokens"] = False
        # a nested list (one list of images per prompt) is what Idefics-style processors need and
        # what current processors accept; transformers < 4.47 image processors want a flat list
        try:
            inputs = processor(text=[prompt] * len(pil_images), images=[[im] for im in pil_images],
                               padding=True, return_tensors="pt", **extra)
        except ValueError as exc:
            if "Invalid image type" not in str(exc):
                raise
            inputs = processor(text=[prompt] * len(pil_images), images=list(pil_images),
                               padding=True, return_tensors="pt", **extra)
        return inputs, instruction
    if instruction:
        return processor(images=pil_images, text=[instruction] * len(pil_images), padding=True,
                         return_tensors="pt"), instruction
    return processor(images=pil_images, return_tensors="pt"), ""


def _strip_prompt(sequences, input_ids):
    """Per row, drop the leading tokens the model copied from its input (prompt / prefix)."""
    rows = []
    for row_index, row in enumerate(sequences):
        if input_ids is None:
            rows.append(row)
            continue
        prompt = input_ids[row_index % input_ids.shape[0]]
        n = min(len(row), len(prompt))
        same = (row[:n] == prompt[:n].to(row.device)).long()
        keep_from = int(same.cumprod(0).sum())
        rows.append(row[keep_from:])
    return rows


# ------------------------------------------------------------------------- captioning
def to_pil_list(images) -> list:
    """IMAGE tensors ([B,H,W,3] or a list of them, mixed sizes allowed) or PIL images -> PIL list."""
    from PIL import Image

    from .images import to_pil

    if images is None:
        raise ValueError("image is missing: connect an IMAGE")
    items = images if isinstance(images, (list, tuple)) else [images]
    out = []
    for item in items:
        out.extend([item.convert("RGB")] if isinstance(item, Image.Image) else to_pil(item))
    return out


class _BatchProgress:
    """Maps per-token progress of one batch onto one bar over all images x tokens."""

    def __init__(self, bar, base: int, batch_len: int, total: int):
        self.bar, self.base, self.batch_len, self.total = bar, base, batch_len, total

    def update_absolute(self, step, total=None, preview=None):
        self.bar.update_absolute(self.base + int(step) * self.batch_len, self.total)


def _generate_kwargs(captioner: Captioner, settings: CaptionSettings) -> dict:
    kwargs = {"max_new_tokens": int(settings.max_new_tokens), "num_beams": int(settings.num_beams),
              "do_sample": bool(settings.do_sample)}
    if settings.do_sample:
        kwargs.update(temperature=float(settings.temperature), top_p=float(settings.top_p))
    gen = getattr(captioner.model, "generation_config", None)
    min_new = getattr(gen, "min_new_tokens", None) if gen is not None else None
    if min_new and min_new > settings.max_new_tokens:
        kwargs["min_new_tokens"] = int(settings.max_new_tokens)
    if gen is not None and getattr(gen, "pad_token_id", None) is None and captioner.tokenizer is not None:
        pad = captioner.tokenizer.pad_token_id if captioner.tokenizer.pad_token_id is not None else captioner.tokenizer.eos_token_id
        if pad is not None:
            kwargs["pad_token_id"] = pad
    return kwargs


def _fit_context(captioner: Captioner, inputs: dict, kwargs: dict) -> dict:
    """``kwargs`` with max_new_tokens clamped to the decoder's context after this batch's prompt."""
    ids = inputs.get("input_ids")
    prompt = int(ids.shape[1]) if ids is not None else 1  # a VED decoder starts from one token
    wanted = kwargs["max_new_tokens"]
    n = clamp_new_tokens(captioner.model.config, prompt, wanted, captioner.name)
    if n == wanted:
        return kwargs
    out = dict(kwargs, max_new_tokens=n)
    if out.get("min_new_tokens", 0) > n:
        out["min_new_tokens"] = n
    gen = getattr(captioner.model, "generation_config", None)
    if getattr(gen, "min_new_tokens", None) and gen.min_new_tokens > n:
        out["min_new_tokens"] = n
    return out


def _ensure_device(captioner: Captioner) -> None:
    """Reload if ComfyUI unloaded it, load through ComfyUI's memory manager, and move back to the
    chosen device if the cache offloaded the model to make room."""
    model_cache.prepare(captioner)
    param = next(captioner.model.parameters(), None)
    if param is not None and param.device.type != captioner.device.type and captioner.quantized == "none":
        captioner.model.to(captioner.device)


def caption_images(captioner: Captioner, images, settings: CaptionSettings = CaptionSettings(),
                   on_batch: Callable[[int, list[str]], None] | None = None) -> list[str]:
    """One cleaned caption per image, in order.

    ``images``: an IMAGE tensor, a list of IMAGE tensors (mixed sizes) or PIL images. Images go
    to ``generate`` ``settings.batch_size`` at a time; ``on_batch(start, captions)`` is called
    after each batch. Progress is reported per token; Cancel stops within one token, raises
    ``host.Interrupted`` (ComfyUI's own exception inside ComfyUI) and leaves the model usable.
    """
    from .server_models import ServerCaptioner

    if isinstance(captioner, ServerCaptioner):  # a model server (Connect Model Server)
        return captioner.caption(images, settings, on_batch=on_batch)
    import torch

    if not isinstance(captioner, Captioner):
        raise ValueError(f"captioner must be an LLMA_CAPTIONER from Load Captioner or Connect Model Server, got {type(captioner).__name__}")
    pil = to_pil_list(images)
    if not pil:
        return []
    instruction = instruction_for(captioner.family, settings)
    base_kwargs = gen_kwargs = _generate_kwargs(captioner, settings)
    total = len(pil) * settings.max_new_tokens
    bar = host.progress(total, label=f"caption {captioner.name}")
    _ensure_device(captioner)
    captions: list[str] = []
    batch = int(settings.batch_size)
    for start in range(0, len(pil), batch):
        host.check_interrupt()
        chunk = pil[start:start + batch]
        inputs, echoed = _model_inputs(captioner, chunk, instruction)
        inputs = {k: (v.to(captioner.device, captioner.dtype) if v.is_floating_point() else v.to(captioner.device))
                  for k, v in inputs.items() if isinstance(v, torch.Tensor)}
        gen_kwargs = _fit_context(captioner, inputs, base_kwargs)
        criteria, raise_if_interrupted = make_stopping_criteria(
            settings.max_new_tokens, _BatchProgress(bar, start * settings.max_new_tokens, len(chunk), total),
            on_tokens=_text_so_far(captioner, inputs.get("input_ids"), echoed, start, int(settings.num_beams)))
        # image i is sampled with seed + i whatever the batch size; torch's global RNG is untouched
        sample_kwargs, private_rng = sampling(
            settings.do_sample, settings.num_beams, [int(settings.seed) + start + i for i in range(len(chunk))],
            settings.temperature, settings.top_p, int(getattr(getattr(captioner.model, "generation_config", None), "top_k", 0) or 0))
        try:
            faults.maybe_raise("oom")
            with torch.inference_mode(), private_rng:
                sequences = captioner.model.generate(**inputs, stopping_criteria=criteria, **{**gen_kwargs, **sample_kwargs})
        except Exception as exc:  # noqa: BLE001 - OOM is translated, the rest re-raised
            if not faults.is_oom(exc):
                raise
            inputs = criteria = None
            host.empty_cache()
            raise ValueError(
                f"out of memory captioning {len(chunk)} images at once with {captioner.name}: lower batch_size "
                f"(now {batch}), max_new_tokens (now {settings.max_new_tokens}) or num_beams (now {settings.num_beams}), "
                "or load the captioner with dtype fp16/bf16 or quantization") from None
        raise_if_interrupted()
        rows = _strip_prompt(sequences, inputs.get("input_ids"))
        decoder = captioner.tokenizer if captioner.tokenizer is not None else captioner.processor
        texts = [clean_generated_text(decoder.decode(row, skip_special_tokens=True), prompt=echoed) for row in rows]
        captions.extend(texts)
        bar.update_absolute((start + len(chunk)) * settings.max_new_tokens, total)
        if on_batch is not None:
            on_batch(start, texts)
    return captions


def _text_so_far(captioner: Captioner, input_ids, echoed: str, start: int, beams: int):
    """``on_tokens`` for make_stopping_criteria: the captions so far on the node (inside ComfyUI)."""
    if not host.in_comfyui():
        return None
    decoder = captioner.tokenizer if captioner.tokenizer is not None else captioner.processor

    def show(sequences):
        rows = _strip_prompt(sequences[::max(1, beams)], input_ids)
        texts = [clean_generated_text(decoder.decode(row, skip_special_tokens=True), prompt=echoed) for row in rows]
        host.progress_text("\n".join(f"{start + i + 1}: {t}" for i, t in enumerate(texts)))

    return show


def with_batch_size(settings: CaptionSettings, batch_size: int) -> CaptionSettings:
    return replace(settings, batch_size=int(batch_size))
