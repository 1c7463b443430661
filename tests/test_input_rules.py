"""One rule set for widget values: the headless runner's validation and the node guard agree
(issue 11 §4), and what they accept is converted exactly as ComfyUI converts it."""
from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from llm_assist.nodes._guard import check_value
from llm_assist.runner.validate import _check_value
from llm_assist.runner.workflow import InputSpec

VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
                   st.text(max_size=8), st.sampled_from(["5", " 7 ", "0.5", "nan", "true", "false", "1e3"]),
                   st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))
KINDS = st.sampled_from([("INT", {}), ("INT", {"min": 0, "max": 100}), ("FLOAT", {}), ("FLOAT", {"min": -1.0, "max": 1.0}),
                         ("STRING", {}), ("BOOLEAN", {}), (["a", "b", 3], {}), ([], {})])
COMFY = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}


def _runner(kind, options, value):
    spec = InputSpec("x", kind, options)
    result = _check_value(spec, value, checks=True)
    return ("error", None) if isinstance(result, str) else ("ok", result[0])


def _guard(kind, options, value):
    try:
        return "ok", check_value("x", kind, options, value)
    except ValueError:
        return "error", None


def _same(a, b):
    return a == b and type(a) is type(b) or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


@settings(max_examples=600, derandomize=True)
@given(kind=KINDS, value=VALUES)
def test_runner_and_guard_apply_one_rule(kind, value):
    kind, options = kind
    runner_outcome, guard_outcome = _runner(kind, options, value), _guard(kind, options, value)
    assert runner_outcome[0] == guard_outcome[0], (kind, value, runner_outcome, guard_outcome)
    if runner_outcome[0] == "ok":
        assert _same(runner_outcome[1], guard_outcome[1])
        if isinstance(kind, str):  # accepted values are converted exactly as ComfyUI converts them
            raw = value.strip() if isinstance(value, str) and kind in ("INT", "FLOAT") else value
            assert _same(runner_outcome[1], COMFY[kind](raw))


def test_the_rules_comfyui_applies_and_where_we_refuse():
    assert _guard("STRING", {}, 5) == ("ok", "5") and _runner("STRING", {}, 5) == ("ok", "5")
    assert _guard("INT", {}, "42") == ("ok", 42) and _guard("INT", {}, 64.0) == ("ok", 64)
    assert _guard("FLOAT", {}, "0.5") == ("ok", 0.5)
    for kind, value in (("BOOLEAN", "false"), ("INT", 7.9), ("INT", True), ("FLOAT", float("nan")),
                        ("STRING", None), ("STRING", ["1", 0]), (["a", "b"], "c")):
        assert _guard(kind, {}, value)[0] == "error" and _runner(kind, {}, value)[0] == "error", (kind, value)
