"""Workflows saved by older versions of the pack still load, as they do in the editor."""
import copy
import json
import logging
from pathlib import Path

import pytest

from llm_assist import NODE_CLASS_MAPPINGS
from llm_assist.runner.execute import node_class_mappings
from llm_assist.runner.workflow import WorkflowError, to_api_prompt

CLASSES = node_class_mappings(NODE_CLASS_MAPPINGS)  # the pack's nodes and the runner's core stand-ins

EXAMPLES = Path(__file__).resolve().parents[1] / "example_workflows"


def _keywords_node(ui):
    return next(n for n in ui["nodes"] if n["type"] == "LLMAssistExtractKeywords")


def test_extract_keywords_saved_with_its_old_seed_widget_still_loads(caplog):
    """Before 0.2 Extract Keywords had a seed (+ control value) as its last widgets: the editor
    ignores values past the last widget, and so does the runner (with a warning)."""
    ui = json.loads((EXAMPLES / "variation.json").read_text(encoding="utf-8"))
    current = to_api_prompt(copy.deepcopy(ui), CLASSES)
    node = _keywords_node(ui)
    node["widgets_values"] = list(node["widgets_values"]) + [42, "randomize"]
    with caplog.at_level(logging.WARNING):
        old = to_api_prompt(ui, CLASSES)
    assert old == current
    assert "extra ones at the end are ignored" in caplog.text
    assert "seed" not in old[str(node["id"])]["inputs"]


def test_too_few_widget_values_is_still_an_error():
    ui = json.loads((EXAMPLES / "variation.json").read_text(encoding="utf-8"))
    node = _keywords_node(ui)
    node["widgets_values"] = list(node["widgets_values"])[:-1]
    with pytest.raises(WorkflowError, match="widget values"):
        to_api_prompt(ui, CLASSES)


def test_no_node_without_randomness_gets_a_seed_control():
    """An INT named seed gets the editor's control widget (default 'randomize', which re-runs the
    node on every queue): only nodes that use randomness may have one."""
    from llm_assist.runner.workflow import schema_from_class

    with_control = {name for name, cls in NODE_CLASS_MAPPINGS.items()
                    if any(s.has_control_value for s in schema_from_class(name, cls).widgets)}
    assert "LLMAssistExtractKeywords" not in with_control
    assert "LLMAssistGenerate" in with_control
