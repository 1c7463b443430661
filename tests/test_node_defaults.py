"""INPUT_TYPES is the one table of defaults: a node called from Python without a widget gets the
default the editor would send, whatever the method's own signature says."""
import inspect

import pytest

from llm_assist import NODE_CLASS_MAPPINGS
from llm_assist.nodes._guard import check_inputs


def _widget_defaults(cls):
    out = {}
    for category in ("required", "optional"):
        for name, entry in (cls.INPUT_TYPES().get(category) or {}).items():
            options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            if "default" in options and not options.get("forceInput"):  # forceInput: a socket in the editor
                out[name] = options["default"]
    return out


@pytest.mark.parametrize("node_id", sorted(NODE_CLASS_MAPPINGS))
def test_left_out_widgets_get_their_declared_default(node_id):
    cls = NODE_CLASS_MAPPINGS[node_id]
    defaults = _widget_defaults(cls)
    filled = check_inputs(cls, {})
    is_list = getattr(cls, "INPUT_IS_LIST", False)
    for name, default in defaults.items():
        assert filled[name] == ([default] if is_list else default), name


@pytest.mark.parametrize("node_id", sorted(NODE_CLASS_MAPPINGS))
def test_no_method_default_contradicts_input_types(node_id):
    """A default in the method's signature that differs from INPUT_TYPES would be a second,
    disagreeing table; None (an unconnected socket) is fine."""
    cls = NODE_CLASS_MAPPINGS[node_id]
    defaults = _widget_defaults(cls)
    signature = inspect.signature(getattr(cls, cls.FUNCTION))
    for name, parameter in signature.parameters.items():
        if name in defaults and parameter.default is not inspect.Parameter.empty and parameter.default is not None:
            assert parameter.default == defaults[name], (
                f"{node_id}.{cls.FUNCTION}({name}={parameter.default!r}) but INPUT_TYPES says {defaults[name]!r}")


def test_extract_keywords_from_python_with_only_the_caption():
    node = NODE_CLASS_MAPPINGS["LLMAssistExtractKeywords"]()
    keywords, texts = node.extract(caption=["a brown dog runs on the beach"])
    assert texts[0].startswith("dog") and len(keywords) == 1
