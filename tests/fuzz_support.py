"""Shared pieces for the hardening tests: valid-ish node inputs built from INPUT_TYPES, hypothesis
strategies for bad values of each socket type, and the rule for an acceptable failure.

Nothing here knows a particular node beyond a few cheap defaults: the fuzz iterates over
``llm_assist.NODE_CLASS_MAPPINGS`` so new nodes are covered as they land.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

# Loader node -> the tiny model its combo should pick.
TINY_CHOICE = {"tiny-blip", "tiny-clip", "tiny-sd15", "tiny-qwen2-chat"}
LOADERS = {
    "LLMAssistLoadCaptioner": ("LLMA_CAPTIONER", {"model": "tiny-blip"}),
    "LLMAssistLoadImageEncoder": ("LLMA_IMAGE_ENCODER", {"model": "tiny-clip"}),
    "LLMAssistLoadPipeline": ("LLMA_PIPELINE", {"model": "tiny-sd15"}),
    "LLMAssistLoadLanguageModel": ("LLMA_LANGUAGE_MODEL", {"model": "tiny-qwen2-chat"}),
}
# Inputs whose size drives the run time: keep them small (values above the cap are never drawn).
COST_CAPS = {"steps": 3, "width": 64, "height": 64, "batch_size": 2, "max_new_tokens": 6, "num_beams": 2,
             "limit": 3, "top_k": 16, "step_cache_interval": 2, "max_words": 4}
CHEAP_DEFAULTS = {"steps": 3, "width": 64, "height": 64, "batch_size": 1, "max_new_tokens": 4, "num_beams": 1,
                  "token_budget": 77, "limit": 0}
IMAGE_SIZE = 32


def input_specs(cls) -> dict:
    """name -> (category, type, options) for the required and optional inputs of a node class."""
    declared = cls.INPUT_TYPES()
    out = {}
    for category in ("required", "optional"):
        for name, entry in (declared.get(category) or {}).items():
            kind = entry[0]
            options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            out[name] = (category, kind, options)
    return out


def type_name(kind) -> str:
    return "COMBO" if isinstance(kind, (list, tuple)) else str(kind)


@dataclass
class Fixtures:
    """Real values for the custom sockets plus files the io nodes need."""

    sockets: dict = field(default_factory=dict)  # type name -> value
    image_dir: Path | None = None
    image_paths: list = field(default_factory=list)
    out_dir: Path | None = None


def rand_image(b=1, h=IMAGE_SIZE, w=IMAGE_SIZE, c=3, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, h, w, c, generator=g)


def half_mask(b=1, h=IMAGE_SIZE, w=IMAGE_SIZE):
    import torch

    m = torch.zeros(b, h, w)
    m[:, : h // 2] = 1.0
    return m


_IMAGE_SERVER = []


def model_server_url() -> str:
    """A real OpenAI-protocol server on 127.0.0.1 (tests/server_support.py) for Connect Model Server."""
    if not _IMAGE_SERVER:
        from server_support import ImageServer

        _IMAGE_SERVER.append(ImageServer())
    return _IMAGE_SERVER[0].url


def default_value(node: str, name: str, kind, options: dict, fx: Fixtures):
    """A valid, cheap value for one input."""
    t = type_name(kind)
    if node in LOADERS and name in LOADERS[node][1]:
        return LOADERS[node][1][name]
    if node == "LLMAssistConnectModelServer" and name in ("base_url", "model"):
        return model_server_url() if name == "base_url" else "vision-test"
    if t == "COMBO":
        choices = list(kind)
        default = options.get("default")
        return default if default in choices else choices[0]
    if t == "INT":
        if name in CHEAP_DEFAULTS:
            return CHEAP_DEFAULTS[name]
        return int(options.get("default", options.get("min", 0)))
    if t == "FLOAT":
        value = options.get("default")
        if value is None:
            lo, hi = options.get("min", 0.0), options.get("max", 1.0)
            value = (lo + hi) / 2
        return float(value)
    if t == "BOOLEAN":
        return bool(options.get("default", False))
    if t == "STRING":
        if node == "LLMAssistLoadImageFolder" and name == "path":
            return str(fx.image_dir)
        if node == "LLMAssistSaveCaptions" and name == "captions":
            return ["a cat", "a dog", "a fox"]
        if node == "LLMAssistSaveCaptions" and name == "image_paths":
            return [str(p) for p in fx.image_paths]
        if node == "LLMAssistSaveCaptions" and name == "output_folder":
            return str(fx.out_dir)
        if node == "LLMAssistSaveCaptions" and name == "mode":
            return "overwrite"
        if name in ("caption", "text", "positive"):
            return "a black cat sitting on a red sofa"
        if name == "fixed_text":
            return "a cat"
        return options.get("default", "")
    if t == "IMAGE":
        return rand_image()
    if t == "MASK":
        return half_mask()
    if t in fx.sockets:
        return fx.sockets[t]
    if t == "*":
        return 0.5
    return None


def default_inputs(node: str, cls, fx: Fixtures) -> dict:
    values = {}
    for name, (category, kind, options) in input_specs(cls).items():
        value = default_value(node, name, kind, options, fx)
        if value is None and category == "optional":
            continue
        values[name] = value
    if node == "LLMAssistSaveCaptions":
        values["mode"] = "overwrite"
    return values


def call_node(cls, kwargs: dict):
    """Call a node as the host does (INPUT_IS_LIST nodes get lists)."""
    obj = cls()
    if getattr(cls, "INPUT_IS_LIST", False):
        kwargs = {k: (v if isinstance(v, list) else [v]) for k, v in kwargs.items()}
    return getattr(obj, cls.FUNCTION)(**kwargs)


# ---------------------------------------------------------------- strategies
def _tensor(shape, fill=None, dtype="float32"):
    import torch

    if fill is None:
        return torch.rand(*shape, generator=torch.Generator().manual_seed(1)).to(getattr(torch, dtype))
    return torch.full(shape, fill, dtype=getattr(torch, dtype))


def image_values():
    """Images a host can hand a node: odd sizes, 1/4 channels, empty batches, NaN, other dtypes."""
    dims = st.sampled_from([1, 2, 3, 7, 13, 17, 31, 33])
    shapes = st.tuples(st.integers(1, 3), dims, dims, st.sampled_from([1, 3, 4]))
    return st.one_of(
        shapes.map(_tensor),
        st.sampled_from([(0, 32, 32, 3), (1, 0, 32, 3), (1, 32, 32, 2), (1, 32, 32, 5), (32, 32, 3), (32, 32),
                         (1, 1, 32, 32, 3)]).map(_tensor),
        st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 2.0]).map(lambda v: _tensor((1, 16, 16, 3), v)),
        st.just(None).map(lambda _: _tensor((1, 16, 16, 3), 128, "uint8")),
        st.just(None).map(lambda _: _tensor((2, 16, 16, 3), None, "float16")),
    )


def mask_values():
    """Masks of wrong sizes / batches / ranks, NaN, all-zero."""
    return st.one_of(
        st.tuples(st.integers(1, 4), st.sampled_from([1, 8, 31, 32, 33]), st.sampled_from([1, 8, 32, 33])).map(_tensor),
        st.sampled_from([(32, 32), (1, 32, 32, 1), (0, 32, 32), (32,), (2, 1, 32, 32)]).map(_tensor),
        st.sampled_from([math.nan, math.inf, 0.0, -3.0, 7.0]).map(lambda v: _tensor((1, 32, 32), v)),
    )


def huge_text():
    return st.sampled_from(["", " ", "\n\t", "a" * 100_000, "cat, " * 5000, "\x00\x01\x7f", "(((((", "))", ":1.5",
                            "{keywords}", "{", "%s %d {0}", "猫 が ソファ", "😀🐈‍⬛", "a\u200bb", "\\", "'; DROP",
                            "../../etc/passwd", "/abs/path", "C:\\win", "-cat, +fox:9e9, =>, ->x, :", "+:"])


def wrong_objects():
    import torch

    return st.sampled_from([None, 0, -1, 1.5, "x", b"bytes", [], {}, (), object(), torch.zeros(2), [None]])


def string_values():
    return st.one_of(huge_text(), st.text(max_size=200))


def int_values(name: str, options: dict):
    lo = int(options.get("min", -(2 ** 31)))
    hi = int(options.get("max", 2 ** 31))
    if name in COST_CAPS:
        hi = min(hi, COST_CAPS[name])
        return st.one_of(st.integers(lo, hi), st.sampled_from([lo - 1, 0, -1, -(2 ** 40)]))
    return st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, lo - 1, hi + 1, -1, 0, 2 ** 64]))


def float_values(options: dict):
    lo, hi = options.get("min"), options.get("max")
    edges = [math.nan, math.inf, -math.inf, -1e30, 1e30, -0.0, 0.0, 1e-300]
    if lo is not None:
        edges += [lo, lo - 1e-3]
    if hi is not None:
        edges += [hi, hi + 1e-3]
    finite = st.floats(lo if lo is not None else -1e6, hi if hi is not None else 1e6, allow_nan=False)
    return st.one_of(finite, st.sampled_from(edges))


def bad_values(name: str, kind, options: dict, fx: Fixtures):
    """A strategy of values for one input: in-range edge values, off-range values, wrong types."""
    t = type_name(kind)
    if t == "IMAGE":
        base = image_values()
    elif t == "MASK":
        base = mask_values()
    elif t == "INT":
        base = int_values(name, options)
    elif t == "FLOAT":
        base = float_values(options)
    elif t == "BOOLEAN":
        base = st.sampled_from([True, False, 0, 1, "true", None])
    elif t == "STRING":
        base = string_values()
    elif t == "COMBO":
        base = st.one_of(st.sampled_from(list(kind)), st.sampled_from(["", "not-an-option", "../x", 3, None]))
    else:  # a custom socket: another pack object, a wrong object, or None
        others = [v for k, v in fx.sockets.items() if k != t]
        base = st.sampled_from(others) if others else wrong_objects()
        base = st.one_of(base, wrong_objects())
    return st.one_of(base, base, base, wrong_objects())  # a wrong Python type one time in four


# ---------------------------------------------------------------- judging an outcome
# an input whose value is reported under another name (repo_id replaces the model combo)
ALIASES = {"repo_id": {"model"}}


def _names(name: str, kind) -> set:
    t = type_name(kind)
    words = {name, name.replace("_", " ")}
    words |= {w[:-1] for w in list(words) if w.endswith("s")}  # image_paths -> 'image path'
    words |= ALIASES.get(name, set())
    if t in ("IMAGE", "MASK"):
        words.add(t.lower())
    if t.startswith("LLMA_"):
        words.add(t[5:].lower())
        words.add(t[5:].lower().replace("_", " "))
    return words


def acceptable_error(exc: BaseException, mutated: dict, specs: dict) -> str | None:
    """None when ``exc`` is a clear error about one of the mutated inputs; otherwise why not."""
    from llm_assist.core import host

    if isinstance(exc, host.Interrupted):
        return None
    if not isinstance(exc, ValueError):
        return f"{type(exc).__name__} is not a ValueError"
    text = str(exc).lower()
    if len(text) > 2000:
        return f"message is {len(text)} characters long (a dump, not a message)"
    words = set()
    for name in mutated:
        words |= {w.lower() for w in _names(name, specs[name][1])}
    if not any(w in text for w in words):
        return f"message does not name any of {sorted(mutated)}"
    return None


def describe(value) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"tensor{tuple(shape)} {getattr(value, 'dtype', '')}"
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."
