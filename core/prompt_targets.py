"""Which prompt form a generator reads, and how its tokens are counted.

Targets (``TARGETS``):

* ``tags``: comma-separated terms with ``(term:1.2)`` weights, for CLIP (SD 1.x/2.x, SDXL, and
  ComfyUI's own CLIPTextEncode). Only families whose encoder honours weights get the syntax;
  for the others weights become order only (and the report says so).
* ``natural``: sentences (``core.prompt_render.render_natural``) for T5 / Qwen / Gemma / Mistral
  encoders (FLUX.1, SD3, Qwen-Image, Z-Image, Chroma, Sana).
* ``json``: a structured object (``render_json``) for generators that take one (FLUX.2).

``auto`` follows the connected pipeline's family (``core.diffusion.families``); without a pipeline
it is ``tags`` (what SD and ComfyUI's CLIPTextEncode read). Set it by hand when the text goes to a
native ComfyUI sampler of another family.

Token counting, first that applies:

1. a tokenizer folder chosen on the node, or the pipeline's prompt tokenizer (T5 for FLUX.1/SD3,
   Qwen for Qwen-Image/Z-Image, CLIP for SD): exact, special tokens included;
2. for ``tags``, an image encoder's CLIP tokenizer (exact);
3. inside ComfyUI, its bundled tokenizer for the encoder kind (CLIP, T5, Qwen2.5): exact;
4. an estimate per encoder kind (``estimate_tokens_for``):

   - CLIP: ``2 + UTF-8 bytes without whitespace``, a strict upper bound (byte-level BPE);
   - T5 / Qwen / Gemma / Mistral: ``1 + ceil(UTF-8 bytes / 2.5)``. Not a bound: against the
     real T5 and Qwen2.5 tokenizers (ComfyUI's bundled ones) on natural / json / tags renderings
     in English, German, French, Spanish, Chinese, Japanese and Russian it is 0.83-1.9x the real
     count (under only for Spanish/JSON on T5 and Chinese on Qwen, by at most 17%); a test pins
     these ratios when ComfyUI's tokenizers are installed. Connect the pipeline for exact counts.

The budget of ``natural`` / ``json`` is capped at the family's encoder length (FLUX.1: 512 T5
tokens, SD3: 256); ``token_budget`` 0 means exactly that length (no limit without a pipeline).
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

TARGETS = ("tags", "natural", "json")
TARGET_CHOICES = ("auto",) + TARGETS
LANGUAGE_CHOICES = ("auto", "english", "german", "french", "spanish", "neutral")
AUTO_TOKENIZER = "auto"
# ComfyUI's bundled tokenizer folders (comfy/<path>) per encoder kind
BUNDLED = {"clip": "sd1_tokenizer", "t5": "text_encoders/t5_tokenizer", "qwen": "text_encoders/qwen25_tokenizer"}
MULTILINGUAL = frozenset({"qwen", "mistral", "gemma"})

TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class Target:
    """The prompt form for one generator: target, family, encoder kind, length cap, weights."""

    target: str = "tags"
    family: str = ""  # a core.diffusion.families name, "" when no pipeline is connected
    encoder: str = "clip"  # clip | t5 | qwen | mistral | gemma
    max_tokens: int = 0  # the encoder's length for natural/json; 0 = no cap
    weighted: bool = True  # the encoder path honours (term:1.2)
    negative: bool = True  # a negative prompt has an effect
    tokenizer: Any = None  # the pipeline's prompt tokenizer, when connected
    reason: str = ""


def _families():
    from .diffusion import families

    return families


def pipeline_family(pipeline) -> str | None:
    """The family name of a loaded pipeline handle (or a bare diffusers pipeline), None if unknown."""
    fam = _families()
    name = getattr(pipeline, "family", None)
    if name in fam.FAMILIES:
        return name
    pipe = getattr(pipeline, "pipe", pipeline)
    return fam.family_of(pipe)


def resolve_target(choice: str = "auto", pipeline=None) -> Target:
    """The Target for ``choice`` (auto / tags / natural / json) and an optional pipeline handle."""
    if choice not in TARGET_CHOICES:
        raise ValueError(f"target must be one of {list(TARGET_CHOICES)}, got {choice!r}")
    if pipeline is None:
        target = "tags" if choice == "auto" else choice
        encoder = "clip" if target == "tags" else "t5"
        why = "no pipeline connected: tags for CLIP" if choice == "auto" else f"{target} set by hand"
        return Target(target, "", encoder, 0, True, True, None, why)
    fam = _families()
    family = pipeline_family(pipeline)
    spec = fam.FAMILIES.get(family) if family else None
    if spec is None:
        target = "tags" if choice == "auto" else choice
        return Target(target, family or "", "clip", 0, True, True, getattr(pipeline, "tokenizer", None),
                      f"unknown family {family!r}: {target}")
    pipe = getattr(pipeline, "pipe", pipeline)
    found = fam.text_tokenizers(pipe, family)
    tokenizer, kind = (found[-1][2], found[-1][1]) if found else (None, spec.prompt_encoder.kind)
    target = spec.prompt_target if choice == "auto" else choice
    if target == "tags":  # tags read by the family's first (CLIP) encoder when it has one
        clip = next((entry for entry in found if entry[1] == "clip"), None)
        if clip is not None:
            tokenizer, kind = clip[2], "clip"
    max_tokens = 0 if target == "tags" else spec.max_tokens
    why = (f"{spec.label} pipeline reads {spec.prompt_target}" if choice == "auto"
           else f"{target} set by hand ({spec.label} pipeline reads {spec.prompt_target})")
    return Target(target, family, kind, max_tokens, bool(spec.weighted), bool(spec.negative), tokenizer, why)


# ------------------------------------------------------------------------- token counting
def estimate_tokens_for(encoder: str) -> TokenCounter:
    """The documented estimate for an encoder kind (see module docstring)."""
    if encoder == "clip":
        from .prompt_builder import estimate_tokens

        return estimate_tokens
    return estimate_llm_tokens


def estimate_llm_tokens(text: str) -> int:
    """``1 + ceil(UTF-8 bytes / 2.5)``: SentencePiece / byte-BPE estimate for T5, Qwen, Gemma, Mistral."""
    return 1 + math.ceil(len((text or "").encode("utf-8")) / 2.5)


def tokenizer_choices() -> list[str]:
    """The node's tokenizer combo: auto, ComfyUI's bundled ones (inside ComfyUI), diffusers tokenizer folders."""
    names = [AUTO_TOKENIZER]
    names += [f"comfyui/{kind}" for kind in BUNDLED if _bundled_folder(kind) is not None]
    try:
        from . import host

        for model in host.list_models("diffusers"):
            for root in host.model_folders("diffusers"):
                folder = root / model
                if folder.is_dir():
                    names += [f"diffusers/{model}/{sub.name}" for sub in sorted(folder.iterdir())
                              if sub.is_dir() and sub.name.startswith("tokenizer")]
                    break
    except Exception:  # noqa: BLE001 - a broken models folder must not break the node list
        log.warning("could not list tokenizer folders", exc_info=True)
    return list(dict.fromkeys(names))


def _bundled_folder(kind: str) -> Path | None:
    from . import host

    clip = host.comfy_clip_tokenizer_folder()  # comfy/sd1_tokenizer, inside ComfyUI only
    comfy = clip.parent if clip is not None else None
    if comfy is None or kind not in BUNDLED:
        return None
    folder = comfy / BUNDLED[kind]
    return folder if folder.is_dir() else None


@lru_cache(maxsize=8)
def _load_tokenizer(folder: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)


def tokenizer_from_choice(choice: str):
    """The tokenizer a combo entry names; errors name the entry and the fix."""
    if choice.startswith("comfyui/"):
        folder = _bundled_folder(choice.split("/", 1)[1])
        if folder is None:
            raise ValueError(f"tokenizer {choice!r} is only available inside ComfyUI: pick 'auto' or a diffusers folder")
        return _load_tokenizer(str(folder))
    if choice.startswith("diffusers/"):
        from . import host

        model, _, sub = choice[len("diffusers/"):].rpartition("/")
        if not model or not re.fullmatch(r"tokenizer[\w-]*", sub):
            raise ValueError(f"tokenizer must be 'auto' or diffusers/<model>/tokenizer*, got {choice!r}")
        folder = host.resolve_model("diffusers", model) / sub
        if not folder.is_dir():
            raise ValueError(f"tokenizer folder {choice!r} does not exist: refresh the node or pick 'auto'")
        return _load_tokenizer(str(folder))
    raise ValueError(f"tokenizer must be 'auto', comfyui/<kind> or diffusers/<model>/tokenizer*, got {choice!r}")


def token_counter(target: Target, tokenizer_choice: str = AUTO_TOKENIZER, image_encoder=None) -> tuple[TokenCounter, str]:
    """The counter for ``target`` (see the module docstring's order) and its name for the report."""
    from .prompt_builder import tokenizer_counter

    if tokenizer_choice and tokenizer_choice != AUTO_TOKENIZER:
        return tokenizer_counter(tokenizer_from_choice(tokenizer_choice)), f"tokenizer {tokenizer_choice}"
    if target.tokenizer is not None:
        return tokenizer_counter(target.tokenizer), f"{target.encoder} tokenizer of the {target.family} pipeline"
    if target.encoder == "clip" and getattr(image_encoder, "tokenizer", None) is not None:
        return (tokenizer_counter(image_encoder.tokenizer),
                f"tokenizer of {getattr(image_encoder, 'name', type(image_encoder).__name__)}")
    kind = "qwen" if target.encoder in MULTILINGUAL else target.encoder
    folder = _bundled_folder(kind)
    if folder is not None:
        try:
            return tokenizer_counter(_load_tokenizer(str(folder))), f"ComfyUI's bundled {kind} tokenizer"
        except Exception:  # noqa: BLE001 - fall back to the estimate
            log.warning("could not load ComfyUI's %s tokenizer from %s: estimating", kind, folder, exc_info=True)
    if target.encoder == "clip":
        return estimate_tokens_for("clip"), "estimate (2 + bytes without spaces)"
    return estimate_llm_tokens, f"estimate for {target.encoder} (1 + bytes / 2.5)"


def effective_budget(target: Target, token_budget: int) -> int:
    """The budget used: natural/json are capped at the encoder's length; 0 means that length."""
    if token_budget < 0:
        raise ValueError(f"token_budget must be >= 0 (0 = no limit), got {token_budget}")
    if target.target == "tags" or not target.max_tokens:
        return token_budget
    return min(token_budget, target.max_tokens) if token_budget else target.max_tokens


# ------------------------------------------------------------------------- weights and languages
def convert_weighted(text: str) -> tuple[str, float, bool]:
    """``(plain text, weight, had_syntax)`` of a term or text with ComfyUI weight syntax.

    The weight is the one furthest from 1 among its pieces (``"(red hat:1.3)"`` -> ``("red hat", 1.3, True)``).
    """
    from .diffusion.prompt_embeds import parse_weighted

    pieces = parse_weighted(text or "")
    plain = " ".join("".join(t for t, _ in pieces).split())
    weights = [w for t, w in pieces if t.strip()]
    weight = max(weights, key=lambda w: abs(w - 1.0)) if weights else 1.0
    had = plain != " ".join((text or "").split())
    return plain, round(weight, 2), had


_TOKEN = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*", re.UNICODE)
_LATIN = re.compile(r"^[A-Za-z\u00C0-\u024F'’-]+$")


def detect_language(caption: str = "", terms=()) -> str:
    """english / german / french / spanish from stopwords of the caption (and terms); else neutral.

    With no stopword evidence: English when most term words are in the English lexicon, otherwise
    neutral (no glue words), so unknown-language keywords never get English words around them.
    """
    from .keywords.lexicon import STOPWORDS

    words = [w.lower() for w in _TOKEN.findall(" ".join([caption or "", *terms]))]
    scores = {lang: sum(w in stop for w in words) for lang, stop in STOPWORDS.items()}
    best = max(scores.values(), default=0)
    leaders = [lang for lang, s in scores.items() if s == best]
    if best >= 1 and len(leaders) == 1:
        return leaders[0]
    term_words = [w.lower() for w in _TOKEN.findall(" ".join(terms))]
    if not term_words or not all(_LATIN.match(w) for w in term_words):
        return "neutral"
    from .keywords import lexicon as L

    known = L.BASIC_NOUNS | L.COLOURS | L.ADJECTIVES | L.PEOPLE | L.CLOTHING | L.BODY_PARTS | L.VERB_BASES
    hits = sum(w in known or w.rstrip("s") in known or w.removesuffix("ing") in known for w in term_words)
    return "english" if hits * 2 >= len(term_words) else "neutral"


def render_language(choice: str, caption: str = "", terms=()) -> str:
    if choice not in LANGUAGE_CHOICES:
        raise ValueError(f"language must be one of {list(LANGUAGE_CHOICES)}, got {choice!r}")
    return detect_language(caption, terms) if choice == "auto" else choice
