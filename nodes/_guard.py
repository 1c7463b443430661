"""Check a node's inputs against its own INPUT_TYPES before the node body runs.

ComfyUI checks widget constants (type, min/max, combo) before it calls a node, but not linked
values, and scripts or other hosts call nodes directly. ``guard(cls)`` wraps the node's FUNCTION
so every value is checked the same way: a wrong Python type, a NaN / infinite FLOAT, a number
outside min..max, a combo value that is not an option, or the wrong pack object on an LLMA_*
socket becomes a ValueError that names the input, the value and the fix. Widget values follow the
one rule set shared with the headless runner (core/input_rules.py: ComfyUI's own conversions,
INT 64.0 -> 64, STRING 5 -> "5"). Imports nothing heavy.
"""
from __future__ import annotations

import functools
import inspect

from ..core import input_rules

# custom socket -> class name of the object it carries (checked by name: no heavy import)
SOCKET_CLASSES = {
    "LLMA_CAPTIONER": ("Captioner", "ServerCaptioner"),
    "LLMA_LANGUAGE_MODEL": ("LanguageModel", "ServerLanguageModel"),
    "LLMA_IMAGE_ENCODER": ("ImageEncoder",),
    "LLMA_PIPELINE": ("PipelineHandle",),
    "LLMA_FEATURES": ("Features",),
    "LLMA_KEYWORDS": ("Keywords",),
    "LLMA_PROMPT": ("PromptSpec",),
    "LLMA_IMAGE_FILES": ("ImageFiles",),
    "IMAGE": ("Tensor",),
    "MASK": ("Tensor",),
}


_PLAIN = (type(None), bool, int, float, complex, str, bytes, list, tuple, dict, set)


def _short(value) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"a {type(value).__name__} of shape {tuple(shape)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _class_names(value) -> set:
    return {c.__name__ for c in type(value).__mro__}


def check_value(name: str, kind, options: dict, value):
    """The value converted as ComfyUI would, or a ValueError naming ``name``."""
    if isinstance(kind, (list, tuple)) or kind in ("INT", "FLOAT", "BOOLEAN", "STRING"):
        result = input_rules.check(kind, options, value)  # the runner's rules too (ComfyUI's own)
        if isinstance(result, str):
            raise ValueError(f"{name} {result}")
        return result[0]
    if kind in SOCKET_CLASSES:
        wanted = SOCKET_CLASSES[kind]
        names = _class_names(value)
        other = {c for k, cs in SOCKET_CLASSES.items() if k != kind for c in cs} - set(wanted)
        # duck-typed stand-ins are fine; plain values and the wrong pack object are not
        if not names & set(wanted) and (isinstance(value, _PLAIN) or names & other or type(value) is object):
            raise ValueError(f"{name} must be a {kind} (a {wanted[0]}), got {_short(value)}: connect a {kind} output")
    return value


def _default(kind, options: dict):
    """What the UI sends for an optional widget left alone (its default); None for a socket,
    including a forceInput value (the editor draws it as a socket and sends nothing unconnected)."""
    widget = isinstance(kind, (list, tuple)) or kind in ("INT", "FLOAT", "BOOLEAN", "STRING")
    return options.get("default") if widget and not options.get("forceInput") else None


def check_inputs(cls, kwargs: dict) -> dict:
    """Check and convert every declared input in ``kwargs`` (lists element-wise on INPUT_IS_LIST
    nodes); a declared widget left out gets its INPUT_TYPES default."""
    declared = cls.INPUT_TYPES()
    is_list = getattr(cls, "INPUT_IS_LIST", False)
    out = dict(kwargs)
    for category in ("required", "optional"):
        for name, entry in (declared.get(category) or {}).items():
            kind = entry[0]
            options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            if name not in kwargs:
                # INPUT_TYPES is the one table of defaults: a widget a Python caller leaves out gets
                # its declared default, as the editor would send it (ComfyUI always sends them all)
                default = _default(kind, options)
                if default is not None:
                    out[name] = [default] if is_list else default
                continue
            value = kwargs[name]
            if is_list:
                if not isinstance(value, list):
                    value = [value]
                if category == "optional":
                    out[name] = [_default(kind, options) if v is None else check_value(name, kind, options, v)
                                 for v in value]
                else:
                    if not value:
                        raise ValueError(f"{name} is an empty list: connect an output that gives at least one value")
                    out[name] = [check_value(name, kind, options, v) for v in value]
            elif value is None and category == "optional":
                out[name] = _default(kind, options)  # unconnected: the widget's default, None for a socket
            else:
                out[name] = check_value(name, kind, options, value)
    return out


def guard(cls):
    """Wrap ``cls``'s FUNCTION with check_inputs (idempotent); returns ``cls``."""
    method = getattr(cls, cls.FUNCTION)
    if getattr(method, "__llma_guarded__", False):
        return cls

    names = [p.name for p in inspect.signature(method).parameters.values()
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][1:]  # without self

    @functools.wraps(method)
    def checked(self, *args, **kwargs):
        if len(args) > len(names):
            raise TypeError(f"{cls.__name__}.{cls.FUNCTION}() takes {len(names)} inputs, got {len(args)} positional values")
        given = {**dict(zip(names, args)), **kwargs}  # positional values are checked like keywords
        try:
            return method(self, **check_inputs(type(self), given))
        finally:
            from ..core import model_cache  # light: no torch

            model_cache.node_finished()  # models loaded with keep_loaded off are freed after each node

    checked.__llma_guarded__ = True
    setattr(cls, cls.FUNCTION, checked)
    return cls
