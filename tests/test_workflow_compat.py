"""Workflows saved by older versions of the pack still load, as they do in the editor."""
import copy
import json
import logging
from pathlib import Path

from llm_assist import NODE_CLASS_MAPPINGS
from llm_assist.runner.execute import node_class_mappings
from llm_assist.runner.workflow import to_api_prompt

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


def test_load_image_folder_saved_before_its_new_widgets_still_runs(caplog):
    """Load Image Folder gained widgets at the end (max_side, load_images...): a workflow saved with
    the old six values loads with their defaults, as the editor shows it."""
    ui = json.loads((EXAMPLES / "dataset_captioning.json").read_text(encoding="utf-8"))
    node = next(n for n in ui["nodes"] if n["type"] == "LLMAssistLoadImageFolder")
    node["widgets_values"] = list(node["widgets_values"])[:6]
    with caplog.at_level(logging.WARNING):
        prompt = to_api_prompt(ui, CLASSES)
    declared = {**NODE_CLASS_MAPPINGS["LLMAssistLoadImageFolder"].INPUT_TYPES()["required"],
                **NODE_CLASS_MAPPINGS["LLMAssistLoadImageFolder"].INPUT_TYPES().get("optional", {})}
    inputs = prompt[str(node["id"])]["inputs"]
    widget_names = [n for n, e in declared.items() if len(e) > 1 and isinstance(e[1], dict) and "default" in e[1]]
    for name in widget_names[6:]:
        assert inputs[name] == declared[name][1]["default"], name
    assert "get their defaults" in caplog.text


def test_a_widget_without_default_missing_is_still_an_error():
    from llm_assist.runner.workflow import InputSpec, NodeSchema, _widget_values

    schema = NodeSchema("X", (InputSpec("a", "INT", {"default": 1}), InputSpec("b", "STRING", {})))
    errors = []
    assert _widget_values({"id": 1, "type": "X", "widgets_values": [5]}, schema, errors) == {}
    assert errors and "'b' has no default" in errors[0]


def test_no_node_without_randomness_gets_a_seed_control():
    """An INT named seed gets the editor's control widget (default 'randomize', which re-runs the
    node on every queue): only nodes that use randomness may have one."""
    from llm_assist.runner.workflow import schema_from_class

    with_control = {name for name, cls in NODE_CLASS_MAPPINGS.items()
                    if any(s.has_control_value for s in schema_from_class(name, cls).widgets)}
    assert "LLMAssistExtractKeywords" not in with_control
    assert "LLMAssistGenerate" in with_control
