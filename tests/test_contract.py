"""Contract over every registered node: the shape ComfyUI and the editor rely on."""
import inspect
import subprocess
import sys

import pytest

import llm_assist
from llm_assist import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

CORE_TYPES = {"IMAGE", "MASK", "STRING", "INT", "FLOAT", "BOOLEAN", "LATENT", "CONDITIONING", "*"}
NODES = sorted(NODE_CLASS_MAPPINGS.items())


def _inputs(cls):
    spec = cls.INPUT_TYPES()
    assert isinstance(spec, dict) and set(spec) <= {"required", "optional", "hidden"}, spec.keys()
    for section in ("required", "optional"):
        for name, value in spec.get(section, {}).items():
            yield section, name, value


def test_pack_registers_nodes():
    assert len(NODE_CLASS_MAPPINGS) >= 1
    assert set(NODE_DISPLAY_NAME_MAPPINGS) == set(NODE_CLASS_MAPPINGS)


def test_import_is_light():
    code = (
        "import sys, llm_assist; heavy = [m for m in ('torch', 'transformers', 'diffusers', 'numpy', 'PIL', 'ray', 'httpx') "
        "if m in sys.modules]; print(','.join(heavy)); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"importing the pack pulled in: {result.stdout} {result.stderr[-2000:]}"


@pytest.mark.parametrize("node_id,cls", NODES, ids=[n for n, _ in NODES])
def test_node_contract(node_id, cls):
    assert node_id.startswith("LLMAssist"), node_id
    display = NODE_DISPLAY_NAME_MAPPINGS[node_id]
    assert display and not display.startswith("LLMAssist"), display
    assert getattr(cls, "DESCRIPTION", "").strip(), f"{node_id} has no DESCRIPTION"
    assert cls.CATEGORY.startswith("LLM Assist/"), cls.CATEGORY
    stage = cls.CATEGORY.split("/", 1)[1]
    assert stage in {"loaders", "describe", "keywords", "prompt", "generate", "evaluate", "io"}, stage

    returns = tuple(cls.RETURN_TYPES)
    for t in returns:
        assert t in CORE_TYPES or t.startswith("LLMA_") or "," in t, f"{node_id} returns unprefixed custom type {t}"
    if returns:
        assert len(cls.RETURN_NAMES) == len(returns), node_id
        assert len(cls.OUTPUT_TOOLTIPS) == len(returns), node_id
        assert all(isinstance(t, str) and t.strip() for t in cls.OUTPUT_TOOLTIPS), node_id
    else:
        assert getattr(cls, "OUTPUT_NODE", False), f"{node_id} returns nothing but is not an output node"
    if hasattr(cls, "OUTPUT_IS_LIST"):
        assert len(cls.OUTPUT_IS_LIST) == len(returns), node_id

    declared = []
    for section, name, value in _inputs(cls):
        declared.append(name)
        assert isinstance(value, tuple) and 1 <= len(value) <= 2, f"{node_id}.{name}: {value!r}"
        kind = value[0]
        options = value[1] if len(value) == 2 else {}
        assert isinstance(options, dict), f"{node_id}.{name}"
        assert options.get("tooltip", "").strip(), f"{node_id}.{name} has no tooltip"
        if isinstance(kind, list):
            assert kind, f"{node_id}.{name} has an empty combo"
            if "default" in options:
                assert options["default"] in kind, f"{node_id}.{name} default not in combo"
        else:
            assert kind in CORE_TYPES or kind.startswith("LLMA_") or kind.startswith("COMBO"), f"{node_id}.{name}: type {kind}"
            if kind in ("INT", "FLOAT") and "default" in options:
                lo, hi = options.get("min", float("-inf")), options.get("max", float("inf"))
                assert lo <= options["default"] <= hi, f"{node_id}.{name} default out of range"

    func = getattr(cls, cls.FUNCTION)
    params = inspect.signature(func).parameters
    names = [p for p in params if p != "self"]
    has_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
    for name in declared:
        assert name in names or has_kwargs, f"{node_id}.{cls.FUNCTION} does not accept input {name}"
    for name, p in params.items():
        if name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        hidden = cls.INPUT_TYPES().get("hidden", {})
        assert name in declared or name in hidden or p.default is not p.empty, f"{node_id}.{cls.FUNCTION} takes undeclared {name}"


def test_version_is_exposed():
    assert llm_assist.__version__
