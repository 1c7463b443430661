"""Frozen dataclasses carried on the pack's custom sockets (LLMA_KEYWORDS, LLMA_PROMPT, LLMA_FEATURES)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Keyword:
    """One ranked key phrase: ``text``, ``score`` in 0..1, and the ``source`` that produced it.

    ``weight`` (optional) is an explicit prompt weight set by Edit Keywords (``+fox:1.2``);
    Build Prompt uses it instead of mapping ``score`` into its weight range.
    """

    text: str
    score: float
    source: str = "statistical"
    weight: float | None = None

    def __post_init__(self):
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError(f"keyword text must be a non-empty string, got {self.text!r}")
        score = float(self.score)
        if not 0.0 <= score <= 1.0 or score != score:
            raise ValueError(f"keyword score must be in 0..1, got {self.score!r} for {self.text!r}")
        object.__setattr__(self, "score", score)
        if self.weight is not None:
            weight = float(self.weight)
            if not 0.0 <= weight <= 5.0 or weight != weight:
                raise ValueError(f"keyword weight must be in 0..5, got {self.weight!r} for {self.text!r}")
            object.__setattr__(self, "weight", weight)


@dataclass(frozen=True)
class Keywords:
    """The keywords of one caption, best first."""

    items: tuple[Keyword, ...] = ()
    caption: str = ""

    def texts(self) -> list[str]:
        return [k.text for k in self.items]

    def as_string(self) -> str:
        return ", ".join(self.texts())

    def __len__(self) -> int:
        return len(self.items)


_SPECIAL = re.compile(r"([()\[\]\\])")


def escape_term(text: str) -> str:
    """Escape ComfyUI prompt-weight syntax characters in a literal term."""
    return _SPECIAL.sub(r"\\\1", text)


def format_weighted(text: str, weight: float) -> str:
    """``(term:1.2)`` for weights other than 1, the escaped term otherwise."""
    term = escape_term(text)
    if abs(weight - 1.0) < 1e-6:
        return term
    number = f"{weight:.2f}".rstrip("0")
    return f"({term}:{number}{'0' if number.endswith('.') else ''})"


@dataclass(frozen=True)
class WeightedTerm:
    text: str
    weight: float = 1.0

    def render(self) -> str:
        return format_weighted(self.text, self.weight)


@dataclass(frozen=True)
class PromptSpec:
    """Generation constraints built from keywords.

    ``target`` tags renders the weighted terms in ComfyUI syntax; natural / json carry their
    rendered ``text`` (sentences or a JSON object, never weight syntax), which ``positive_text`` returns.

    ``template`` may contain ``{keywords}`` where the rendered terms go; otherwise the terms
    come first and the template (style text) is appended.
    """

    positive: tuple[WeightedTerm, ...] = ()
    negative: tuple[WeightedTerm, ...] = ()
    must_keep: tuple[str, ...] = ()
    template: str = ""
    token_budget: int = 77
    dropped: tuple[str, ...] = ()  # terms removed to fit the budget, for display
    meta: tuple[tuple[str, Any], ...] = field(default=())
    target: str = "tags"  # tags | natural | json (core.prompt_targets)
    text: str = ""  # the rendered positive prompt of a natural / json target

    def positive_text(self) -> str:
        if self.target != "tags":
            return self.text
        terms = ", ".join(t.render() for t in self.positive)
        if not self.template:
            return terms
        if "{keywords}" in self.template:
            return self.template.replace("{keywords}", terms).strip(" ,")
        return ", ".join(part for part in (terms, self.template.strip()) if part)

    def negative_text(self) -> str:
        return ", ".join(t.render() for t in self.negative)


@dataclass(frozen=True, eq=False)
class Features:
    """L2-normalised image embeddings ``[B, D]`` (a torch tensor) from one image encoder."""

    embeddings: Any
    model: str = ""

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])
