"""Keywords -> prompt: weights from scores, must-keep terms, negative presets, token budget.

Token counting (always the whole rendered text: weight syntax, template and BOS/EOS included):

* with a tokenizer (the pipeline's, or an image encoder's): the exact count,
  ``len(tokenizer(text)["input_ids"])`` with special tokens;
* without one, a strict upper bound for any byte-level BPE such as CLIP's:
  ``2 + UTF-8 bytes of the NFC-normalised, lower-cased text without whitespace``. Every BPE
  token covers at least one byte and CLIP drops whitespace, so the estimate is never below the
  real count; it is conservative (about 2x the tiny test tokenizer, 3-4x real CLIP on English),
  so connect a pipeline or image encoder for exact budgets.

When over budget, the lowest-scored terms go first (later ones on ties); must-keep terms are
never dropped. Scores 0..1 map linearly to weights ``min_weight..max_weight``; a keyword with an
explicit ``weight`` (set by Edit Keywords) keeps that weight.
"""
from __future__ import annotations

import logging
import unicodedata
from typing import Callable

from .sockets import Keywords, PromptSpec, WeightedTerm

log = logging.getLogger(__name__)

NEGATIVE_PRESETS: dict[str, tuple[str, ...]] = {
    "none": (),
    "photo defaults": ("blurry", "lowres", "jpeg artifacts", "noise", "overexposed", "underexposed",
                       "watermark", "text", "cartoon", "painting"),
    "artwork defaults": ("lowres", "blurry", "bad composition", "messy lines", "watermark", "signature",
                         "text", "jpeg artifacts"),
    "anatomy": ("bad anatomy", "extra limbs", "extra fingers", "missing fingers", "deformed hands",
                "disfigured", "mutated", "malformed limbs", "fused fingers"),
    "text and watermarks": ("text", "watermark", "signature", "logo", "caption", "username"),
}

TokenCounter = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    """Upper bound on CLIP tokens of ``text`` including BOS/EOS (see module docstring)."""
    norm = unicodedata.normalize("NFC", text or "").lower()
    return 2 + sum(len(ch.encode("utf-8")) for ch in norm if not ch.isspace())


def tokenizer_counter(tokenizer) -> TokenCounter:
    """Exact counter (special tokens included) from a Hugging Face tokenizer."""

    def count(text: str) -> int:
        ids = tokenizer(text or "", add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        return len(ids)

    return count


def make_token_counter(*sources) -> tuple[TokenCounter, str]:
    """Counter from the first source exposing a tokenizer (pipeline handle, image encoder, tokenizer)."""
    for source in sources:
        if source is None:
            continue
        tokenizer = getattr(source, "tokenizer", None)
        if tokenizer is None and callable(source) and hasattr(source, "convert_tokens_to_ids"):
            tokenizer = source
        if tokenizer is not None:
            return tokenizer_counter(tokenizer), f"tokenizer of {getattr(source, 'name', type(source).__name__)}"
    comfy_tokenizer = _comfy_clip_tokenizer()
    if comfy_tokenizer is not None:
        return tokenizer_counter(comfy_tokenizer), "ComfyUI's SD1 CLIP tokenizer"
    return estimate_tokens, "estimate (2 + bytes without spaces)"


_COMFY_TOKENIZER: list = []


def _comfy_clip_tokenizer():
    """Inside ComfyUI, its bundled CLIP tokenizer counts exactly what CLIPTextEncode will see."""
    from . import host

    if not _COMFY_TOKENIZER:
        folder = host.comfy_clip_tokenizer_folder()
        tokenizer = None
        if folder is not None:
            try:
                from transformers import CLIPTokenizer

                tokenizer = CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
            except Exception:  # noqa: BLE001 - fall back to the estimate
                log.warning("could not load ComfyUI's CLIP tokenizer from %s: estimating tokens", folder, exc_info=True)
        _COMFY_TOKENIZER.append(tokenizer)
    return _COMFY_TOKENIZER[0]


def split_terms(text: str) -> list[str]:
    """Comma / newline separated terms, stripped, empty ones dropped, first spelling of duplicates kept."""
    seen, out = set(), []
    for part in (text or "").replace("\n", ",").split(","):
        term = part.strip()
        if term and term.lower() not in seen:
            seen.add(term.lower())
            out.append(term)
    return out


def score_to_weight(score: float, min_weight: float, max_weight: float) -> float:
    return round(min_weight + (max_weight - min_weight) * min(1.0, max(0.0, float(score))), 2)


def fit_text_to_budget(text: str, budget: int, count_tokens: TokenCounter | None = None) -> str:
    """``text`` cut at the last comma (else word) boundary that fits ``budget`` tokens; 0 = no limit."""
    count = count_tokens or estimate_tokens
    text = (text or "").strip()
    if budget <= 0 or count(text) <= budget:
        return text
    parts = [p.strip() for p in text.split(",")]
    for n in range(len(parts) - 1, 0, -1):
        candidate = ", ".join(p for p in parts[:n] if p)
        if candidate and count(candidate) <= budget:
            return candidate
    words = text.split()
    lo, hi = 0, len(words)  # largest prefix of words that fits (counts grow with the prefix)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(" ".join(words[:mid]).rstrip(",;:")) <= budget:
            lo = mid
        else:
            hi = mid - 1
    result = " ".join(words[:lo]).rstrip(",;: ")
    if not result:
        log.warning("token budget %d is too small for any of the text", budget)
    return result


def _check_range(min_weight: float, max_weight: float) -> None:
    for name, value in (("min_weight", min_weight), ("max_weight", max_weight)):
        if not 0.0 <= value <= 3.0:
            raise ValueError(f"{name} must be in 0..3, got {value}: typical values are 0.8..1.3")
    if min_weight > max_weight:
        raise ValueError(f"min_weight {min_weight} is above max_weight {max_weight}: swap them")


def collect_terms(keywords: Keywords | None, keep: list[str], min_weight: float,
                  max_weight: float) -> list[tuple[str, float, float, bool]]:
    """``(text, weight, score, is_must_keep)`` per term: must-keep terms missing from the keywords
    first (weight 1), then the keywords in order, duplicates (case-insensitive) dropped."""
    keep_lower = {k.lower() for k in keep}
    terms: list[tuple[str, float, float, bool]] = []
    seen: set[str] = set()
    present = {k.text.strip().lower() for k in (keywords.items if keywords else ())}
    for term in keep:
        if term.lower() not in present:
            terms.append((term, 1.0, 1.0, True))
            seen.add(term.lower())
    for kw in keywords.items if keywords else ():
        text = kw.text.strip()
        if text.lower() in seen:
            continue
        seen.add(text.lower())
        weight = getattr(kw, "weight", None)
        weight = round(float(weight), 2) if weight is not None else score_to_weight(kw.score, min_weight, max_weight)
        terms.append((text, weight, kw.score, text.lower() in keep_lower))
    return terms


def build_prompt(
    keywords: Keywords | None,
    *,
    template: str = "",
    must_keep: str = "",
    negative: str = "",
    negative_preset: str = "none",
    min_weight: float = 0.8,
    max_weight: float = 1.3,
    token_budget: int = 77,
    count_tokens: TokenCounter | None = None,
    counter_name: str = "",
) -> PromptSpec:
    """A PromptSpec whose ``positive_text()`` fits ``token_budget`` (unless must-keep terms alone exceed it)."""
    _check_range(min_weight, max_weight)
    if negative_preset not in NEGATIVE_PRESETS:
        raise ValueError(f"negative_preset must be one of {list(NEGATIVE_PRESETS)}, got {negative_preset!r}")
    if token_budget < 0:
        raise ValueError(f"token_budget must be >= 0 (0 = no limit), got {token_budget}")
    count = count_tokens or estimate_tokens
    keep = split_terms(must_keep)
    terms = collect_terms(keywords, keep, min_weight, max_weight)

    def spec(current, dropped=(), neg=()) -> PromptSpec:
        return PromptSpec(
            positive=tuple(WeightedTerm(t, w) for t, w, _, _ in current),
            negative=tuple(WeightedTerm(t, 1.0) for t in neg),
            must_keep=tuple(keep), template=(template or "").strip(), token_budget=token_budget,
            dropped=tuple(dropped),
        )

    dropped: list[str] = []
    if token_budget > 0:
        while count(spec(terms).positive_text()) > token_budget:
            droppable = [i for i, t in enumerate(terms) if not t[3]]
            if not droppable:
                log.warning("must-keep terms and template alone exceed the token budget of %d", token_budget)
                break
            victim = min(droppable, key=lambda i: (terms[i][2], -i))
            dropped.append(terms.pop(victim)[0])
    neg_terms = split_terms(", ".join(NEGATIVE_PRESETS[negative_preset] + tuple(split_terms(negative))))
    if token_budget > 0:
        while neg_terms and count(spec([], neg=neg_terms).negative_text()) > token_budget:
            dropped.append(neg_terms.pop())
    result = spec(terms, dropped, neg_terms)
    used = count(result.positive_text())
    meta = (("token_count", used), ("negative_token_count", count(result.negative_text())),
            ("counter", counter_name or ("estimate" if count_tokens is None else "tokenizer")),
            ("over_budget", token_budget > 0 and used > token_budget))
    return PromptSpec(result.positive, result.negative, result.must_keep, result.template,
                      result.token_budget, result.dropped, meta)


def build_prompt_for(
    keywords: Keywords | None,
    target,
    *,
    language: str = "auto",
    template: str = "",
    must_keep: str = "",
    negative: str = "",
    negative_preset: str = "none",
    min_weight: float = 0.8,
    max_weight: float = 1.3,
    token_budget: int = 77,
    count_tokens: TokenCounter | None = None,
    counter_name: str = "",
) -> PromptSpec:
    """A PromptSpec rendered for ``target`` (a ``core.prompt_targets.Target``).

    ``tags`` for an encoder that honours weights is exactly ``build_prompt`` (today's SD output).
    Otherwise weight syntax in must-keep terms, keywords and the template is converted into plain
    text with the same weight as data (said by order and emphasis words, see core.prompt_render),
    and ``meta['converted']`` lists what was converted. The budget is capped at the encoder's length.
    """
    from .prompt_render import render_json, render_natural
    from .prompt_targets import convert_weighted, effective_budget, render_language

    budget = effective_budget(target, token_budget)
    base = (("target", target.target), ("family", target.family or "-"), ("encoder", target.encoder),
            ("target_reason", target.reason), ("budget", budget))
    notes = [] if target.negative or not (negative or negative_preset != "none") else [
        f"the {target.family} family ignores the negative prompt (no classic CFG)"]
    if target.target == "tags" and target.weighted:
        spec = build_prompt(keywords, template=template, must_keep=must_keep, negative=negative,
                            negative_preset=negative_preset, min_weight=min_weight, max_weight=max_weight,
                            token_budget=budget, count_tokens=count_tokens, counter_name=counter_name)
        meta = spec.meta + base + (("language", "-"), ("converted", ()), ("notes", tuple(notes)))
        return PromptSpec(spec.positive, spec.negative, spec.must_keep, spec.template, spec.token_budget,
                          spec.dropped, meta)
    _check_range(min_weight, max_weight)
    if negative_preset not in NEGATIVE_PRESETS:
        raise ValueError(f"negative_preset must be one of {list(NEGATIVE_PRESETS)}, got {negative_preset!r}")
    count = count_tokens or estimate_tokens
    converted: list[str] = []

    def plain(text: str) -> tuple[str, float]:
        result, weight, had = convert_weighted(text)
        if had:
            converted.append(text)
        return result, weight

    keep_weights = {}
    for raw in split_terms(must_keep):
        text, weight = plain(raw)
        if text:
            keep_weights[text.lower()] = (text, weight)
    terms = []
    for text, weight, score, is_keep in collect_terms(keywords, [t for t, _ in keep_weights.values()],
                                                      min_weight, max_weight):
        text, inner = plain(text)
        if is_keep and text.lower() in keep_weights:
            inner = keep_weights[text.lower()][1]
        if text:
            terms.append((text, round(weight * inner, 2), score, is_keep))
    style, _ = plain(template or "") if template else ("", 1.0)
    lang = render_language(language, getattr(keywords, "caption", "") or "", [t[0] for t in terms])
    if target.target == "tags":
        notes.append(f"the {target.family} encoder ({target.encoder}) cannot weight: weights became term order")

    def render(current) -> str:
        items = [(t, w) for t, w, _, _ in current]
        if target.target == "natural":
            return render_natural(items, lang, style)
        if target.target == "json":
            return render_json(items, style)
        from .prompt_render import ordered

        return PromptSpec(positive=tuple(WeightedTerm(t, 1.0) for t, _ in ordered(items)), template=style).positive_text()

    dropped: list[str] = []
    if budget > 0:
        while count(render(terms)) > budget:
            droppable = [i for i, t in enumerate(terms) if not t[3]]
            if not droppable:
                log.warning("must-keep terms and template alone exceed the token budget of %d", budget)
                break
            victim = min(droppable, key=lambda i: (terms[i][2], -i))
            dropped.append(terms.pop(victim)[0])
    neg_terms = split_terms(", ".join(NEGATIVE_PRESETS[negative_preset] + tuple(plain(t)[0] for t in split_terms(negative))))
    neg_spec = lambda neg: PromptSpec(negative=tuple(WeightedTerm(t, 1.0) for t in neg))  # noqa: E731
    if budget > 0:
        while neg_terms and count(neg_spec(neg_terms).negative_text()) > budget:
            dropped.append(neg_terms.pop())
    text = render(terms)
    used = count(text)
    if converted:
        notes.append(f"converted weight syntax of {len(converted)} item(s) to plain text for the {target.encoder} encoder")
    meta = (("token_count", used), ("negative_token_count", count(neg_spec(neg_terms).negative_text())),
            ("counter", counter_name or ("estimate" if count_tokens is None else "tokenizer")),
            ("over_budget", budget > 0 and used > budget)) + base + (
            ("language", lang if target.target == "natural" else "-"), ("converted", tuple(converted)),
            ("notes", tuple(notes)))
    if target.target == "tags":
        from .prompt_render import ordered

        positive = tuple(WeightedTerm(t, 1.0) for t, _ in ordered([(t, w) for t, w, _, _ in terms]))
        return PromptSpec(positive, neg_spec(neg_terms).negative, tuple(t for t, _ in keep_weights.values()), style,
                          budget, tuple(dropped), meta)
    return PromptSpec(tuple(WeightedTerm(t, w) for t, w, _, _ in terms), neg_spec(neg_terms).negative,
                      tuple(t for t, _ in keep_weights.values()), style, budget, tuple(dropped), meta,
                      target=target.target, text=text)


def report_text(spec: PromptSpec) -> str:
    """The spec's meta (target, family, counts, conversions, notes) as sorted JSON for the node's report."""
    import json

    data = {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.meta}
    data["dropped"] = list(spec.dropped)
    return json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1)
