"""Edit a keyword list with a small text syntax.

Syntax (items separated by commas or new lines; spaces around items and operators are ignored;
empty items are skipped)::

    -TERM               remove TERM
    +TERM               add TERM (score 1.0); if present already, nothing changes
    +TERM:W             add TERM with prompt weight W (or set W when it is present)
    TERM                same as +TERM
    TERM:W              reweight TERM to prompt weight W (TERM must be present)
    OLD=>NEW            replace OLD by NEW (``->`` works too), keeping score, weight and position
    OLD=>NEW:W          replace and set prompt weight W

TERM is any text without ``,`` ``:`` or a line break that does not start with ``+`` / ``-``.
W is a decimal number in 0..5 (e.g. ``1.2``). Weights are ComfyUI prompt weights: Build Prompt
renders the term as ``(TERM:W)`` instead of mapping the keyword's 0..1 score into its weight
range (the score is kept for ranking and budget dropping; added terms get score 1.0).

Matching is case-insensitive. OLD / TERM first matches whole keywords; when no keyword equals
it, it matches every keyword that contains it as a whole word (``-cat`` removes "black cat",
``cat=>fox`` turns "black cat" into "black fox"). Terms that match nothing are reported as
``not found: cat`` in the report, never silently dropped. Edited keywords carry source "edit".
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..sockets import Keyword, Keywords

MAX_WEIGHT = 5.0
_NUMBER = re.compile(r"^\d+(\.\d*)?$|^\.\d+$")
_REPLACE = re.compile(r"=>|->")


@dataclass(frozen=True)
class Edit:
    op: str  # "remove" | "add" | "reweight" | "replace"
    term: str
    new: str = ""
    weight: float | None = None
    position: int = 0  # 1-based character position of the item in the edit text


class EditSyntaxError(ValueError):
    """A mistake in the edit text: says where (character position) and how to fix it."""


def _fail(position: int, item: str, problem: str, fix: str) -> None:
    raise EditSyntaxError(f"edits: syntax error at character {position} ({item.strip()!r}): {problem}; {fix}")


def _term(text: str, position: int, item: str, what: str) -> str:
    term = " ".join(text.split())
    if not term:
        _fail(position, item, f"{what} is empty", "write a word or phrase there, e.g. -cat, +fox:1.2, cat=>fox")
    if term[0] in "+-":
        _fail(position, item, f"{what} {term!r} starts with {term[0]!r}", "use one + or - at the start of the item only")
    if "=>" in term or "->" in term:
        _fail(position, item, "more than one '=>' / '->'", "replace one term per item: cat=>fox, dog=>wolf")
    return term


def _weight(text: str, position: int, item: str) -> float:
    text = text.strip()
    if not _NUMBER.match(text):
        _fail(position, item, f"weight {text!r} is not a number", "write a decimal weight after the colon, e.g. dog:0.5 or +fox:1.2")
    value = float(text)
    if value > MAX_WEIGHT:
        _fail(position, item, f"weight {value} is above {MAX_WEIGHT}", "use a prompt weight between 0 and 5 (1.0 = neutral)")
    return value


def parse_edits(text: str) -> list[Edit]:
    """Parse the edit text (see module docstring); raises EditSyntaxError with the position and a fix."""
    edits: list[Edit] = []
    for match in re.finditer(r"[^,\n]+", text or ""):
        item = match.group(0)
        if not item.strip():
            continue
        position = match.start() + len(item) - len(item.lstrip()) + 1
        body = item.strip()
        weight = None
        if ":" in body:
            body, _, raw = body.rpartition(":")
            if ":" in body:
                _fail(position, item, "more than one ':'", "write one weight per item, e.g. dog:0.5")
            weight = _weight(raw, position, item)
        if body.startswith("-"):
            if weight is not None:
                _fail(position, item, "a removed term cannot have a weight", f"write -{body[1:].strip()} without ':{raw.strip()}'")
            edits.append(Edit("remove", _term(body[1:], position, item, "the term after '-'"), position=position))
        elif body.startswith("+"):
            edits.append(Edit("add", _term(body[1:], position, item, "the term after '+'"), weight=weight, position=position))
        elif _REPLACE.search(body):
            old, new = _REPLACE.split(body, maxsplit=1)
            edits.append(Edit("replace", _term(old, position, item, "the term before '=>'"),
                              _term(new, position, item, "the term after '=>'"), weight, position))
        elif weight is not None:
            edits.append(Edit("reweight", _term(body, position, item, "the term before ':'"), weight=weight, position=position))
        else:
            edits.append(Edit("add", _term(body, position, item, "the term"), position=position))
    return edits


def _matches(items: list[Keyword], term: str) -> list[int]:
    low = term.lower()
    exact = [i for i, k in enumerate(items) if k.text.strip().lower() == low]
    if exact:
        return exact
    word = re.compile(r"(?<!\w)" + re.escape(low) + r"(?!\w)")
    return [i for i, k in enumerate(items) if word.search(k.text.lower())]


def _replace_text(text: str, old: str, new: str) -> str:
    if text.strip().lower() == old.lower():
        return new
    return re.sub(r"(?<!\w)" + re.escape(old) + r"(?!\w)", lambda _m: new, text, flags=re.IGNORECASE)


def apply_edits(keywords: Keywords | None, edits_text: str) -> tuple[Keywords, list[str]]:
    """Apply the edit text in order; returns the new keywords and the terms that matched nothing."""
    items = list(keywords.items) if keywords else []
    caption = keywords.caption if keywords else ""
    missing: list[str] = []
    for edit in parse_edits(edits_text):
        found = _matches(items, edit.term)
        if edit.op == "add":
            exact = [i for i in found if items[i].text.strip().lower() == edit.term.lower()]
            if exact:
                if edit.weight is not None:
                    for i in exact:
                        items[i] = replace(items[i], weight=edit.weight, source="edit")
            else:
                items.append(Keyword(edit.term, 1.0, "edit", edit.weight))
            continue
        if not found:
            missing.append(edit.term)
            continue
        if edit.op == "remove":
            items = [k for i, k in enumerate(items) if i not in set(found)]
        elif edit.op == "reweight":
            for i in found:
                items[i] = replace(items[i], weight=edit.weight, source="edit")
        elif edit.op == "replace":
            for i in found:
                weight = edit.weight if edit.weight is not None else items[i].weight
                items[i] = replace(items[i], text=_replace_text(items[i].text, edit.term, edit.new),
                                   weight=weight, source="edit")
    # a replace can make two keywords equal: keep the first
    seen, unique = set(), []
    for k in items:
        if k.text.lower() not in seen:
            seen.add(k.text.lower())
            unique.append(k)
    return Keywords(tuple(unique), caption), missing


def report(missing: list[str]) -> str:
    return "not found: " + ", ".join(missing) if missing else ""
