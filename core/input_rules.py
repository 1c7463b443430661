"""The one rule set for widget values: used by the headless runner's validation
(runner/validate.py) and by the node guard (nodes/_guard.py). Imports nothing heavy.

The rule is ComfyUI's own (``execution.validate_inputs``): a constant is converted with
``int()``, ``float()``, ``str()`` or ``bool()`` by its declared type, then checked against
min / max, and a combo value must be one of the options. We follow it so that a workflow ComfyUI
accepts is accepted headless and inside our nodes, and one it refuses is refused too (a STRING
input given 5 gets "5" everywhere). Where ComfyUI's conversion would silently change what the
user wrote, we refuse instead, with the fix in the message:

* BOOLEAN from a string (``bool("false")`` is True), or from a number other than 0 / 1;
* INT from a non-whole number (``int(7.9)`` is 7) and from ``True`` / ``False``;
* a FLOAT that is NaN or infinite (NaN passes ComfyUI's min/max because comparisons are False);
* anything that is not a JSON scalar (None, lists, dicts, objects): ComfyUI never receives
  those as constants (a list is a link), so they only reach a node through a bug;
* a combo whose option list is empty here (no model files yet, or an /object_info without
  them) accepts any text: the node resolves the name itself and says what is missing.

Each function returns the problem as text ("must be INT, got 'x' (...): give an int value"), or
a converted value; callers prefix where it happened.
"""
from __future__ import annotations

import math

CONVERT = {"INT": int, "FLOAT": float, "STRING": str}
SCALARS = (str, int, float, bool)


def _short(value, limit: int = 60) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"a {type(value).__name__} of shape {tuple(shape)}"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def convert(kind: str, value):
    """``(converted,)`` for a widget type (INT, FLOAT, STRING, BOOLEAN), or the problem as text."""
    if kind == "BOOLEAN":
        if isinstance(value, (bool, int, float)) and not isinstance(value, str) and value in (0, 1):
            return (bool(value),)
        return f"must be BOOLEAN, got {_short(value)}: use true or false"
    if kind not in CONVERT:
        return (value,)
    if not isinstance(value, SCALARS):
        return f"must be {kind}, got {_short(value)}: give a {kind.lower()} value"
    if kind == "INT" and isinstance(value, bool):
        return f"must be INT, got {value!r}: give a whole number"
    if kind == "INT" and isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return f"must be INT, got {_short(value)} (not a whole number): give a whole number"
    try:
        value = CONVERT[kind](value.strip() if isinstance(value, str) and kind != "STRING" else value)
    except (TypeError, ValueError, OverflowError) as exc:
        return f"must be {kind}, got {_short(value)} ({exc}): give a {kind.lower()} value"
    if kind == "FLOAT" and not math.isfinite(value):
        return f"must be a finite FLOAT, got {value}: give a number"
    return (value,)


def range_problem(kind: str, value, options) -> str | None:
    """The min / max problem of a converted INT or FLOAT, or None."""
    if kind not in ("INT", "FLOAT"):
        return None
    lo, hi = options.get("min"), options.get("max")
    allowed = (f"from {lo} to {hi}" if lo is not None and hi is not None
               else f"of at least {lo}" if lo is not None else f"of at most {hi}")
    if lo is not None and value < lo:
        return f"is {value}, smaller than its min {lo}: use a value {allowed}"
    if hi is not None and value > hi:
        return f"is {value}, bigger than its max {hi}: use a value {allowed}"
    return None


def combo_problem(options, value) -> str | None:
    """A value that is not one of a combo's options (ComfyUI compares without converting), or None."""
    options = list(options)
    if options and value in options and type(value) is not bool:
        return None
    if not options and isinstance(value, str):  # options not known here (e.g. no model files yet):
        return None  # the node checks the name itself when it runs
    shown = options if len(options) <= 20 else f"{options[:20]} ... ({len(options)} options)"
    return f"is {_short(value)}, which is not one of its options {shown}: pick one of them"


def check(kind, options, value, limits: bool = True):
    """Convert and check one widget value: ``(value,)`` or the problem text.

    ``kind`` is a type name or a list of combo options; ``limits`` False skips min/max and combo
    membership (an input the node's VALIDATE_INPUTS checks itself, as in ComfyUI).
    """
    if isinstance(kind, (list, tuple)):
        problem = combo_problem(kind, value) if limits else None
        return (value,) if problem is None else problem
    result = convert(kind, value)
    if isinstance(result, str) or not limits:
        return result
    problem = range_problem(kind, result[0], options)
    return result if problem is None else problem
