"""Diffusion model families: one table of what each family is, reads and defaults to.

Light module (no torch / diffusers import): the loader, the draw nodes, the prompt renderer and
the docs read the same table.

A loaded pipeline (the ``LLMA_PIPELINE`` socket object, ``core.diffusion.loading.PipelineHandle``)
answers:

- ``handle.family``: a name from ``FAMILIES`` ('sd1', 'sd2', 'sdxl', 'sd3', 'flux', 'flux2',
  'qwen-image', 'z-image', 'chroma', 'sana');
- ``handle.spec``: that family's ``FamilySpec`` (prompt target, token budget, defaults...);
- ``handle.variant``: 'standard', 'inpaint' (9-channel UNet), 'instruct' (InstructPix2Pix),
  'fill' (FLUX Fill), 'kontext' (FLUX Kontext) or 'edit' (Qwen-Image-Edit);
- ``handle.text_tokenizers()`` / ``text_tokenizers(pipe)``: the ``(attribute, kind, tokenizer,
  max_length)`` of each text encoder's tokenizer, and ``handle.prompt_tokenizer``: the one that
  reads the long prompt (T5 for FLUX/SD3/Chroma, Qwen for Qwen-Image/Z-Image/FLUX.2 Klein,
  Mistral for FLUX.2, Gemma for Sana, CLIP for SD1/SD2/SDXL).

Without a loaded pipeline, ``family_from_class_name(model_index["_class_name"])`` names the family
of a diffusers folder.
"""
from __future__ import annotations

from dataclasses import dataclass

PROMPT_TARGETS = ("tags", "natural", "json")
MODES = ("txt2img", "img2img", "inpaint")
VARIANTS = ("standard", "inpaint", "instruct", "fill", "kontext", "edit")


@dataclass(frozen=True)
class Encoder:
    tokenizer: str  # pipeline attribute holding the tokenizer (or processor)
    kind: str  # clip | t5 | qwen | mistral | gemma
    max_length: int  # tokens this encoder reads (the pipeline's max_sequence_length for LLM/T5 encoders)


@dataclass(frozen=True)
class FamilySpec:
    name: str
    label: str
    prompt_target: str  # tags | natural | json (json: also reads natural)
    encoders: tuple[Encoder, ...]  # the last one reads the long prompt (see prompt_encoder)
    steps: int  # default steps
    cfg: float  # default guidance value for the pack's 'cfg' input
    guidance: str  # cfg (classic CFG) | distilled (guidance embedded, no negative) | true_cfg (true CFG scale)
    multiple: int  # width/height must be multiples of this (VAE factor x patch size)
    native: tuple[int, int]  # (width, height) the family was trained at
    modes: tuple[str, ...]  # modes of the plain text-to-image variant
    classes: dict  # mode -> diffusers class name for the plain variant
    weighted: bool = False  # (term:1.2) weights honoured via prompt embeddings (CLIP only)
    negative: bool = True  # a negative prompt has an effect (with cfg > 1 / true CFG)
    load_for: str = ""  # what to load for a missing mode (error messages)

    @property
    def prompt_encoder(self) -> Encoder:
        return self.encoders[-1]

    @property
    def max_tokens(self) -> int:
        return self.prompt_encoder.max_length


_CLIP = Encoder("tokenizer", "clip", 77)
_SD_CLASSES = {"txt2img": "StableDiffusionPipeline", "img2img": "StableDiffusionImg2ImgPipeline",
               "inpaint": "StableDiffusionInpaintPipeline"}
_ALL = MODES

FAMILIES: dict[str, FamilySpec] = {s.name: s for s in (
    FamilySpec("sd1", "Stable Diffusion 1.x", "tags", (_CLIP,), 20, 7.0, "cfg", 8, (512, 512), _ALL, _SD_CLASSES,
               weighted=True),
    FamilySpec("sd2", "Stable Diffusion 2.x", "tags", (_CLIP,), 25, 7.0, "cfg", 8, (768, 768), _ALL, _SD_CLASSES,
               weighted=True),
    FamilySpec("sdxl", "Stable Diffusion XL", "tags", (_CLIP, Encoder("tokenizer_2", "clip", 77)), 25, 6.0, "cfg", 8,
               (1024, 1024), _ALL, {"txt2img": "StableDiffusionXLPipeline", "img2img": "StableDiffusionXLImg2ImgPipeline",
                                    "inpaint": "StableDiffusionXLInpaintPipeline"}, weighted=True),
    FamilySpec("sd3", "Stable Diffusion 3 / 3.5", "natural",
               (_CLIP, Encoder("tokenizer_2", "clip", 77), Encoder("tokenizer_3", "t5", 256)), 28, 7.0, "cfg", 16,
               (1024, 1024), _ALL, {"txt2img": "StableDiffusion3Pipeline", "img2img": "StableDiffusion3Img2ImgPipeline",
                                    "inpaint": "StableDiffusion3InpaintPipeline"}),
    FamilySpec("flux", "FLUX.1", "natural", (_CLIP, Encoder("tokenizer_2", "t5", 512)), 28, 3.5, "distilled", 16,
               (1024, 1024), _ALL, {"txt2img": "FluxPipeline", "img2img": "FluxImg2ImgPipeline",
                                    "inpaint": "FluxInpaintPipeline"}, negative=False,
               load_for="FLUX.1 Fill (inpaint) or FLUX.1 Kontext (edit)"),
    FamilySpec("flux2", "FLUX.2 / FLUX.2 Klein", "json", (Encoder("tokenizer", "mistral", 512),), 50, 4.0, "distilled",
               16, (1024, 1024), ("txt2img", "img2img"), {"txt2img": "Flux2Pipeline", "img2img": "Flux2Pipeline"},
               negative=False, load_for="FLUX.1 Fill, Qwen-Image, Z-Image or an SDXL inpaint model"),
    FamilySpec("qwen-image", "Qwen-Image", "natural", (Encoder("tokenizer", "qwen", 512),), 50, 4.0, "true_cfg", 16,
               (1328, 1328), _ALL, {"txt2img": "QwenImagePipeline", "img2img": "QwenImageImg2ImgPipeline",
                                    "inpaint": "QwenImageInpaintPipeline"}, load_for="Qwen-Image-Edit (edit)"),
    FamilySpec("z-image", "Z-Image", "natural", (Encoder("tokenizer", "qwen", 512),), 9, 0.0, "cfg", 16, (1024, 1024),
               _ALL, {"txt2img": "ZImagePipeline", "img2img": "ZImageImg2ImgPipeline",
                      "inpaint": "ZImageInpaintPipeline"}),
    FamilySpec("chroma", "Chroma", "natural", (Encoder("tokenizer", "t5", 512),), 35, 5.0, "cfg", 16, (1024, 1024),
               _ALL, {"txt2img": "ChromaPipeline", "img2img": "ChromaImg2ImgPipeline",
                      "inpaint": "ChromaInpaintPipeline"}),
    FamilySpec("sana", "Sana", "natural", (Encoder("tokenizer", "gemma", 300),), 20, 4.5, "cfg", 32, (1024, 1024),
               ("txt2img",), {"txt2img": "SanaPipeline"},
               load_for="an SDXL, FLUX.1, Qwen-Image or Z-Image pipeline (Sana has no img2img/inpaint pipeline in diffusers)"),
)}

# Variant pipelines: (family, variant) -> mode -> class name. A variant serves the modes it lists.
VARIANT_CLASSES: dict[tuple[str, str], dict[str, str]] = {
    ("flux", "fill"): {"inpaint": "FluxFillPipeline", "img2img": "FluxFillPipeline"},
    ("flux", "kontext"): {"img2img": "FluxKontextPipeline", "txt2img": "FluxKontextPipeline"},
    ("qwen-image", "edit"): {"img2img": "QwenImageEditPipeline", "inpaint": "QwenImageEditInpaintPipeline"},
}
VARIANT_DEFAULTS: dict[tuple[str, str], tuple[int, float]] = {  # (steps, cfg) where the variant differs
    ("flux", "fill"): (50, 30.0),
    ("flux2", "klein"): (4, 1.0),
}

# Diffusers class-name prefixes -> family, longest first wins.
_PREFIXES = (
    ("StableDiffusionXL", "sdxl"), ("StableDiffusion3", "sd3"), ("StableDiffusion", "sd1"),
    ("LatentConsistencyModel", "sd1"), ("Flux2", "flux2"), ("Flux", "flux"), ("QwenImage", "qwen-image"),
    ("ZImage", "z-image"), ("Chroma", "chroma"), ("Sana", "sana"),
)


def family_from_class_name(class_name: str) -> str | None:
    """Family of a diffusers pipeline class name (e.g. model_index.json's ``_class_name``); None if unknown.

    SD 2.x cannot be told from the class name (it is a StableDiffusionPipeline): this says
    'sd1'; ``family_of(pipe)`` looks at the UNet to tell them apart.
    """
    for prefix, family in sorted(_PREFIXES, key=lambda p: -len(p[0])):
        if (class_name or "").startswith(prefix):
            return family
    return None


def variant_from_class_name(class_name: str) -> str:
    name = class_name or ""
    for marker, variant in (("InstructPix2Pix", "instruct"), ("FluxFill", "fill"), ("FluxKontext", "kontext"),
                            ("QwenImageEdit", "edit")):
        if marker in name:
            return variant
    return "standard"


def spec(family: str) -> FamilySpec:
    try:
        return FAMILIES[family]
    except KeyError:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}") from None


def family_of(pipe) -> str | None:
    """Family of a loaded diffusers pipeline (SD 2.x told from SD 1.x by its UNet's linear projections)."""
    family = family_from_class_name(type(pipe).__name__)
    if family == "sd1":
        unet_config = getattr(getattr(pipe, "unet", None), "config", None)
        if getattr(unet_config, "use_linear_projection", False) or getattr(unet_config, "cross_attention_dim", 0) == 1024:
            return "sd2"
    return family


def text_tokenizers(pipe, family: str | None = None) -> list[tuple[str, str, object, int]]:
    """``(attribute, kind, tokenizer, max_length)`` for each text encoder of a loaded pipeline that has one.

    FLUX.2 Klein reads with a Qwen tokenizer instead of FLUX.2's Mistral one: the kind follows the
    tokenizer's class. A processor (FLUX.2's Mistral) is returned as its ``.tokenizer``.
    """
    family = family or family_of(pipe)
    if family not in FAMILIES:
        tok = getattr(pipe, "tokenizer", None)
        return [("tokenizer", "clip", tok, 77)] if tok is not None else []
    out = []
    for enc in FAMILIES[family].encoders:
        tok = getattr(pipe, enc.tokenizer, None)
        tok = getattr(tok, "tokenizer", tok) if tok is not None and not callable(getattr(tok, "encode", None)) else tok
        if tok is None:
            continue
        kind = "qwen" if enc.kind == "mistral" and "Qwen" in type(tok).__name__ else enc.kind
        out.append((enc.tokenizer, kind, tok, enc.max_length))
    return out


def prompt_tokenizer(pipe, family: str | None = None):
    """The tokenizer that reads the long prompt (the family's last encoder), or None."""
    found = text_tokenizers(pipe, family)
    return found[-1][2] if found else None
