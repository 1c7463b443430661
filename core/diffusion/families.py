"""Diffusion model families: one table of what each family is, reads and defaults to.

Light module (no torch / diffusers import): the loader, the draw nodes, the prompt renderer and
the docs read the same table.

A loaded pipeline (the ``LLMA_PIPELINE`` socket object, ``core.diffusion.loading.PipelineHandle``)
answers:

- ``handle.family``: a name from ``FAMILIES`` ('sd1', 'sd2', 'sdxl', 'sd3', 'flux', 'flux2',
  'qwen-image', 'z-image', 'chroma', 'sana'; 'other' for any other diffusers pipeline);
- ``handle.spec``: that family's ``FamilySpec`` (prompt target, token budget, defaults...);
- ``handle.variant``: 'standard', 'inpaint' (9-channel UNet), 'instruct' (InstructPix2Pix),
  'fill' (FLUX Fill), 'kontext' (FLUX Kontext), 'edit' (Qwen-Image-Edit) or 'klein' (FLUX.2 Klein);
- ``route(family, variant, mode)``: the diffusers class and call style serving txt2img / img2img /
  inpaint, or a ValueError naming what to load instead;
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
VARIANTS = ("standard", "inpaint", "instruct", "fill", "kontext", "edit", "klein")


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
    negative: bool = True  # a negative prompt has an effect (with cfg > cfg_off / true CFG)
    cfg_off: float = 1.0  # guidance at or below this runs without the negative branch
    load_for: str = ""  # what to load for a missing mode (error messages)

    @property
    def prompt_encoder(self) -> Encoder:
        return self.encoders[-1]

    @property
    def max_tokens(self) -> int:
        return self.prompt_encoder.max_length


_CLIP = Encoder("tokenizer", "clip", 77)
AUTO = "auto"  # route through diffusers' AutoPipelineFor<mode>.from_pipe
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
                      "inpaint": "ZImageInpaintPipeline"}, cfg_off=0.0),
    FamilySpec("chroma", "Chroma", "natural", (Encoder("tokenizer", "t5", 512),), 35, 5.0, "cfg", 16, (1024, 1024),
               ("txt2img", "img2img"), {"txt2img": "ChromaPipeline", "img2img": "ChromaImg2ImgPipeline"},
               # diffusers 0.42.1's ChromaInpaintPipeline reads transformer.config.guidance_embeds, which
               # Chroma's transformer has not: it fails on every Chroma model, so Repair is refused.
               load_for="FLUX.1 Fill, FLUX.1, Z-Image or Qwen-Image for inpainting (diffusers 0.42.1's Chroma "
                        "inpaint pipeline fails on Chroma transformers)"),
    FamilySpec("sana", "Sana", "natural", (Encoder("tokenizer", "gemma", 300),), 20, 4.5, "cfg", 32, (1024, 1024),
               ("txt2img",), {"txt2img": "SanaPipeline"},
               load_for="an SDXL, FLUX.1, Qwen-Image or Z-Image pipeline"),
    # Any other diffusers text-to-image pipeline (PixArt, Lumina, CogView, HunyuanDiT...): the modes
    # diffusers' AutoPipeline mappings give it, the pipeline's own defaults for the rest.
    FamilySpec("other", "other diffusers pipeline", "natural", (Encoder("tokenizer", "other", 512),), 30, 5.0, "cfg",
               16, (1024, 1024), MODES, {m: AUTO for m in MODES}),
)}

# Variant pipelines: (family, variant) -> mode -> (class name or SELF, call style). SELF: the loaded
# pipeline itself. A variant serves only the modes it lists.
SELF = ""
VARIANT_ROUTES: dict[tuple[str, str], dict[str, tuple[str, str]]] = {
    ("flux", "fill"): {m: (SELF, "mask" if m == "inpaint" else "full_mask") for m in MODES},
    ("flux", "kontext"): {"txt2img": (SELF, "text"), "img2img": (SELF, "reference")},
    ("flux2", "klein"): {"txt2img": (SELF, "text"), "img2img": (SELF, "reference"),
                         "inpaint": ("Flux2KleinInpaintPipeline", "mask")},
    ("qwen-image", "edit"): {"img2img": (SELF, "reference"), "inpaint": ("QwenImageEditInpaintPipeline", "mask")},
}
VARIANT_DEFAULTS: dict[tuple[str, str], tuple[int, float]] = {  # (steps, cfg) where the variant differs
    ("flux", "fill"): (50, 30.0),
    ("flux2", "klein"): (4, 1.0),
}
CALL_STYLES = ("text", "strength", "mask", "full_mask", "reference")
SD_FAMILIES = ("sd1", "sd2", "sdxl")  # UNet + CLIP: prompt-embedding weights, latent decode by the pack


def defaults(family: str, variant: str = "standard") -> tuple[int, float]:
    """(steps, cfg) a family/variant is meant to run with (Generate's steps 0 / cfg < 0)."""
    fam = spec(family)
    return VARIANT_DEFAULTS.get((family, variant), (fam.steps, fam.cfg))


def route(family: str, variant: str, mode: str) -> tuple[str, str]:
    """``(class name or SELF, call style)`` that serves ``mode`` on a ``family``/``variant`` pipeline.

    Call styles: ``text`` (prompt only), ``strength`` (img2img: image + strength), ``mask``
    (inpaint: image + mask + strength), ``full_mask`` (an inpaint-only model run with a full mask:
    txt2img over a black image at strength 1, img2img at the strength), ``reference`` (the image
    conditions an editing model; no strength: InstructPix2Pix, FLUX Kontext, FLUX.2, Qwen-Image-Edit).
    Raises ValueError naming what to load when the pipeline has no such mode.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    fam = spec(family)
    if variant == "instruct":
        if mode == "txt2img":
            raise ValueError(f"an InstructPix2Pix-type pipeline edits images; it has no txt2img: use Enhance or Edit "
                             f"with an input image, or load a {fam.label} text-to-image pipeline for Generate")
        return SELF, "reference"
    if variant == "inpaint":
        return fam.classes["inpaint"], "mask" if mode == "inpaint" else "full_mask"
    routes = VARIANT_ROUTES.get((family, variant))
    if routes is not None:
        if mode not in routes:
            raise ValueError(f"a {fam.label} {variant} pipeline has no {mode} mode: {_instead(family, variant, mode)}")
        return routes[mode]
    if mode not in fam.modes:
        raise ValueError(f"{fam.label} has no {mode} pipeline in diffusers: {_instead(family, variant, mode)}")
    if family == "flux2":  # FLUX.2 takes the input image as a reference in the same pipeline
        return SELF, "reference" if mode == "img2img" else "text"
    return fam.classes[mode], {"txt2img": "text", "img2img": "strength", "inpaint": "mask"}[mode]


def _instead(family: str, variant: str, mode: str) -> str:
    if (family, variant) == ("qwen-image", "edit") and mode == "txt2img":
        return "Qwen-Image-Edit edits images; load Qwen-Image for Generate"
    if (family, variant) == ("flux", "kontext") and mode == "inpaint":
        return "use Edit (Kontext edits the whole image; a mask pastes the unmasked pixels back) or load FLUX.1 Fill for Repair"
    if family == "flux2" and mode == "inpaint":
        return "load FLUX.2 Klein (it has an inpaint pipeline), FLUX.1 Fill, or another family with inpainting"
    hint = spec(family).load_for
    return f"load {hint} instead" if hint else "load a pipeline of a family that has it (see the README's family table)"


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
                            ("QwenImageEdit", "edit"), ("Flux2Klein", "klein")):
        if marker in name:
            return variant
    return "standard"


def spec(family: str) -> FamilySpec:
    try:
        return FAMILIES[family]
    except KeyError:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}") from None


def family_of(pipe) -> str:
    """Family of a loaded diffusers pipeline ('other' if unknown; SD 2.x told from SD 1.x by its UNet)."""
    family = family_from_class_name(type(pipe).__name__) or "other"
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
    out = []
    for enc in FAMILIES[family].encoders:
        tok = getattr(pipe, enc.tokenizer, None)
        tok = getattr(tok, "tokenizer", tok) if tok is not None and not callable(getattr(tok, "encode", None)) else tok
        if tok is None:
            continue
        kind = "qwen" if enc.kind == "mistral" and "Qwen" in type(tok).__name__ else enc.kind
        if kind == "other":
            kind = next((k for k in ("clip", "t5", "qwen", "gemma") if k in type(tok).__name__.lower()), "other")
        out.append((enc.tokenizer, kind, tok, enc.max_length))
    return out


def prompt_tokenizer(pipe, family: str | None = None):
    """The tokenizer that reads the long prompt (the family's last encoder), or None."""
    found = text_tokenizers(pipe, family)
    return found[-1][2] if found else None
