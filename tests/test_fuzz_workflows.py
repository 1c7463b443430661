"""Workflow JSON fuzz for the headless runner (issue 7).

Truncated files, unknown nodes, links to missing nodes, cycles, wrong widget counts and random
JSON mutations of an API-format and a UI-format workflow must end in a clear WorkflowError /
ValueError (never a KeyError or TypeError from inside the runner), the CLI must exit non-zero,
and nothing may be written to the output folder by a workflow that failed.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llm_assist
from llm_assist import runner
from llm_assist.core import host

EXAMPLES = Path(llm_assist.__file__).resolve().parent / "example_workflows"
CASES: Counter = Counter()
SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


def base_api() -> dict:
    """Caption text -> keywords -> prompt -> text display, plus LoadImage -> SaveImage: no models needed."""
    return {
        "1": {"class_type": "LLMAssistExtractKeywords", "inputs": {
            "caption": "a black cat on a red sofa", "method": "statistical", "top_k": 5, "min_score": 0.0,
            "max_words": 3, "language": "english", "keep_colors": True, "keep_counts": True, "diversity": 0.5,
            "seed": 0}},
        "2": {"class_type": "LLMAssistBuildPrompt", "inputs": {
            "keywords": ["1", 0], "template": "a photo of {keywords}", "must_keep": "", "negative": "blurry",
            "negative_preset": "none", "min_weight": 0.8, "max_weight": 1.3, "token_budget": 77}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}},
        "4": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "fuzz"}},
    }


TINY_SETS = ()


def data_is_base(data) -> bool:
    return isinstance(data, dict) and data.get("_base") is True


@pytest.fixture()
def dirs(tmp_path, models_root):
    from llm_assist.core.images import to_pil
    from fuzz_support import rand_image

    inp, out = tmp_path / "input", tmp_path / "output"
    inp.mkdir()
    out.mkdir()
    to_pil(rand_image())[0].save(inp / "example.png")
    prev_in, prev_out = host.set_input_directory(inp), host.set_output_directory(out)
    yield inp, out
    host.set_input_directory(prev_in)
    host.set_output_directory(prev_out)


def _clear(out: Path) -> None:
    for p in sorted(out.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()


def run_case(data, out: Path, kind: str) -> str:
    """Run (or, for UI workflows, convert + validate) ``data``; 'ok' or 'error'. Fails on anything unclear."""
    CASES[kind] += 1
    _clear(out)
    try:
        if kind == "ui":
            workflow = runner.load_workflow(data)
            classes = runner.node_class_mappings(None, {"LLMAssistGenerate"})
            from llm_assist.runner.validate import validate_prompt

            prompt = runner.to_api_prompt(workflow, classes)
            validate_prompt(runner.apply_sets(prompt, TINY_SETS, classes) if data_is_base(data) else prompt, classes)
        else:
            runner.run_workflow(data, output_dir=out, cache=False)
    except runner.WorkflowError as exc:
        assert str(exc).strip(), "empty WorkflowError"
        assert not list(out.rglob("*")), f"an invalid workflow wrote {list(out.rglob('*'))}"
        return "error"
    except runner.NodeExecutionError as exc:
        assert isinstance(exc.__cause__, ValueError), f"node failed with a non-ValueError: {exc}"
        return "error"
    except ValueError:
        return "error"
    return "ok"


# ---------------------------------------------------------------- structured bad workflows
def _cycle(p):
    p["1"]["inputs"]["caption"] = ["2", 1]
    return p


def _wrong_link(p):
    p["2"]["inputs"]["keywords"] = ["99", 0]
    return p


STRUCTURED = {
    "unknown node": lambda p: {**p, "9": {"class_type": "NoSuchNode", "inputs": {}}},
    "link to a missing node": _wrong_link,
    "cycle": _cycle,
    "link to a missing output": lambda p: {**p, "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 7]}}},
    "wrong link type": lambda p: {**p, "5": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}},
    "missing required input": lambda p: {**p, "2": {"class_type": "LLMAssistBuildPrompt", "inputs": {"keywords": ["1", 0]}}},
    "no output node": lambda p: {k: v for k, v in p.items() if k in ("1", "2")},
    "no class_type": lambda p: {**p, "7": {"inputs": {}}},
    "empty": lambda p: {},
}


@pytest.mark.parametrize("name", sorted(STRUCTURED))
def test_structurally_bad_api_workflows_are_clear_errors(name, dirs):
    assert run_case(STRUCTURED[name](base_api()), dirs[1], "api") == "error"


def test_the_base_workflows_run(dirs):
    assert run_case(base_api(), dirs[1], "api") == "ok"
    global TINY_SETS
    from llm_assist.runner.tiny_sets import tiny_model_sets

    TINY_SETS = tuple(tiny_model_sets(EXAMPLES / "variation.json"))
    base = json.loads((EXAMPLES / "variation.json").read_text())
    assert run_case({**base, "_base": True}, dirs[1], "ui") == "ok"


# ---------------------------------------------------------------- random mutations
def json_values():
    return st.recursive(st.none() | st.booleans() | st.integers(-5, 10 ** 6) | st.floats(allow_nan=True)
                        | st.text(max_size=12) | st.sampled_from(["1", "2", "99", "NoSuchNode", "IMAGE", "*"]),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                        max_leaves=6)


def _containers(value, path=()):
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _containers(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _containers(v, path + (i,))


@st.composite
def mutated(draw, base):
    data = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        spots = [(p, v) for p, v in _containers(data) if p]
        if not spots:
            break
        path, _ = draw(st.sampled_from(spots))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "link", "swap type"]))
        if action == "delete":
            parent.pop(path[-1]) if isinstance(parent, dict) else parent.pop(path[-1])
        elif action == "link":
            parent[path[-1]] = [draw(st.sampled_from(["1", "2", "3", "4", "99", 1, -1])), draw(st.integers(-1, 3))]
        elif action == "swap type":
            parent[path[-1]] = draw(st.sampled_from([None, 0, "", [], {}, 1e309, "LLMAssistGenerate"]))
        else:
            parent[path[-1]] = draw(json_values())
    return data


@settings(max_examples=150, **SETTINGS)
@given(data=st.data())
def test_random_mutations_of_an_api_workflow_are_ok_or_clear_errors(data, dirs):
    run_case(data.draw(mutated(base_api())), dirs[1], "api")


@settings(max_examples=150, **SETTINGS)
@given(data=st.data())
def test_random_mutations_of_a_ui_workflow_are_ok_or_clear_errors(data, dirs):
    ui = json.loads((EXAMPLES / "variation.json").read_text())
    run_case(data.draw(mutated(ui)), dirs[1], "ui")


@settings(max_examples=40, **SETTINGS)
@given(cut=st.floats(0.0, 0.99))
def test_truncated_workflow_files_are_clear_errors(cut, dirs, tmp_path_factory):
    text = (EXAMPLES / "variation.json").read_text()
    path = tmp_path_factory.mktemp("cut") / "truncated.json"
    path.write_text(text[: int(len(text) * cut)])
    assert run_case(str(path), dirs[1], "file") == "error"


def test_a_workflow_saved_before_widgets_were_added_gets_their_defaults(dirs, caplog):
    """The editor shows a widget added since the workflow was saved with its default: so does the runner."""
    ui = json.loads((EXAMPLES / "variation.json").read_text())
    classes = runner.node_class_mappings(None, {"LLMAssistBuildPrompt"})
    full = runner.to_api_prompt(runner.load_workflow(json.loads(json.dumps(ui))), classes)
    node = next(n for n in ui["nodes"] if n["type"] == "LLMAssistBuildPrompt")
    added = [n for n, e in classes["LLMAssistBuildPrompt"].INPUT_TYPES()["optional"].items()
             if isinstance(e[1], dict) and "default" in e[1]][-3:]
    node["widgets_values"] = node["widgets_values"][:-3]
    with caplog.at_level("WARNING"):
        old = runner.to_api_prompt(runner.load_workflow(ui), classes)
    assert "get their defaults" in caplog.text
    inputs = old[str(node["id"])]["inputs"]
    assert all(inputs[name] == classes["LLMAssistBuildPrompt"].INPUT_TYPES()["optional"][name][1]["default"]
               for name in added)
    assert {k: v for k, v in old.items() if k != str(node["id"])} == {k: v for k, v in full.items() if k != str(node["id"])}


# ---------------------------------------------------------------- the CLI
CLI_CASES = {
    "truncated": lambda: json.dumps(base_api())[:100],
    "unknown node": lambda: json.dumps(STRUCTURED["unknown node"](base_api())),
    "missing link": lambda: json.dumps(_wrong_link(base_api())),
    "cycle": lambda: json.dumps(_cycle(base_api())),
    "not json": lambda: "\x00\xff garbage",
}


def test_cli_exits_non_zero_and_writes_nothing(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    for name, make in CLI_CASES.items():
        out = tmp_path / f"out-{name.replace(' ', '-')}"
        wf = tmp_path / f"{name.replace(' ', '-')}.json"
        wf.write_text(make(), encoding="utf-8", errors="surrogateescape")
        proc = subprocess.run([sys.executable, "-m", "llm_assist", "run", str(wf), "--output", str(out)],
                              capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode != 0, f"{name}: exit 0"
        assert "Traceback" not in proc.stderr, f"{name}: {proc.stderr[-800:]}"
        assert "error" in proc.stderr.lower(), f"{name}: {proc.stderr[-300:]}"
        assert not out.exists() or not list(out.rglob("*")), f"{name}: wrote {list(out.rglob('*'))}"
        CASES["cli"] += 1


def test_zz_workflow_case_count():
    total = sum(CASES.values())
    if total == 0:
        pytest.skip("run the whole file to count the cases")
    print(f"\nworkflow fuzz: {total} cases {dict(CASES)}")
    assert total >= 300
