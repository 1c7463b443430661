"""Validation of an API-format prompt, as ComfyUI's ``validate_prompt`` does it, before anything runs.

Checks, with one message per problem naming node id, class, input, value and the fix: unknown
classes, a prompt without output nodes, links to missing nodes or outputs, cycles, required inputs
missing, link type mismatches ("*" matches anything, comma-separated types overlap), INT / FLOAT
conversion and min/max, BOOLEAN, combo membership (one rule set with the node guard:
core/input_rules.py, ComfyUI's own conversions), and the class's own ``VALIDATE_INPUTS``
(which, as in ComfyUI, switches off the built-in min/max/combo checks for the inputs it takes).
"""
from __future__ import annotations

import inspect
from typing import Mapping

from ..core import input_rules
from ..core.input_rules import CONVERT
from .errors import CORE_NODES, WorkflowError, malformed, unknown_class_message  # noqa: F401 - re-exported
from .workflow import get_schema

def hidden_values(cls, node_id, prompt, extra_pnginfo) -> dict:
    hidden = (cls.INPUT_TYPES().get("hidden") or {})
    values = {"PROMPT": prompt if prompt is not None else {}, "EXTRA_PNGINFO": extra_pnginfo,
              "UNIQUE_ID": node_id, "DYNPROMPT": None, "AUTH_TOKEN_COMFY_ORG": None,
              "API_KEY_COMFY_ORG": None}
    return {name: [values[kind]] for name, kind in hidden.items() if kind in values}


def is_link(value) -> bool:
    """ComfyUI's rule: a 2-list [source id (str), output index (int)]."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], (int, float)) and not isinstance(value[1], bool))


def types_match(received, wanted) -> bool:
    """ComfyUI's validate_node_input (non-strict) with "*" as the any-type."""
    if received == wanted or received == "*" or wanted == "*":
        return True
    if isinstance(wanted, (list, tuple)):  # a combo fed by a node that outputs a combo list
        return received == "COMBO" or (isinstance(received, (list, tuple)) and list(received) == list(wanted))
    if not isinstance(received, str) or not isinstance(wanted, str):
        return False
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in wanted.split(",")}
    return bool(got & want) or "*" in got or "*" in want


def _short(value, limit=60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def order_needed(prompt: Mapping, outputs: list) -> list:
    """Topological order of the nodes the outputs need; raises WorkflowError on a cycle.

    Depth-first post-order (inputs in declaration order), iterative: a chain of any length
    (thousands of nodes) needs no Python recursion.
    """
    order, state = [], {}

    def deps(node_id):
        return iter([v[0] for v in prompt[node_id].get("inputs", {}).values() if is_link(v) and v[0] in prompt])

    for out in outputs:
        if state.get(out) == "done":
            continue
        stack = [(out, deps(out))]
        state[out] = "active"
        while stack:
            node_id, pending = stack[-1]
            child = next(pending, None)
            if child is None:
                stack.pop()
                state[node_id] = "done"
                order.append(node_id)
            elif state.get(child) == "active":
                path = [n for n, _ in stack]
                cycle = path[path.index(child):] + [child]
                raise WorkflowError(
                    "the workflow has a cycle: " + " -> ".join(
                        f"{n} ({prompt[n]['class_type']})" for n in cycle)
                    + ": remove one of these links (ComfyUI cannot run loops either)")
            elif state.get(child) != "done":
                state[child] = "active"
                stack.append((child, deps(child)))
    return order


def _sort_key(node_id):
    return (0, int(node_id), "") if str(node_id).isdigit() else (1, 0, str(node_id))


def validate_prompt(prompt: Mapping, node_classes: Mapping) -> list:
    """See _validate_prompt; a field of the wrong JSON type is a WorkflowError, not a crash."""
    try:
        return _validate_prompt(prompt, node_classes)
    except (TypeError, AttributeError, KeyError, IndexError) as exc:
        raise malformed(exc, "the prompt") from None


def _validate_prompt(prompt: Mapping, node_classes: Mapping) -> list:
    """Validate ``prompt`` (values are converted in place, as ComfyUI does).

    Returns the execution order of the needed nodes; raises WorkflowError listing every problem.
    """
    errors = []
    for node_id, node in prompt.items():
        if not isinstance(node, Mapping) or "class_type" not in node:
            errors.append(f"node {node_id} has no class_type: every API-format node needs one")
        elif node["class_type"] not in node_classes:
            errors.append(unknown_class_message(node_id, node["class_type"]))
    if errors:
        raise WorkflowError(errors)
    outputs = sorted((i for i, n in prompt.items()
                      if getattr(node_classes[n["class_type"]], "OUTPUT_NODE", False) is True),
                     key=_sort_key)
    if not outputs:
        raise WorkflowError("the workflow has no output node (SaveImage, PreviewImage, PreviewAny "
                            "or a pack node that shows a result): add one, or nothing would run")
    # broken links first: the order and the type checks need them
    for node_id, node in prompt.items():
        for name, value in (node.get("inputs") or {}).items():
            if is_link(value) and value[0] not in prompt:
                errors.append(f"node {node_id} ({node['class_type']}): input {name!r} links to node "
                              f"{value[0]}, which is not in the workflow: reconnect it")
    if errors:
        raise WorkflowError(errors)
    order = order_needed(prompt, outputs)
    for node_id in order:
        errors += _validate_node(prompt, node_id, node_classes)
    if errors:
        raise WorkflowError(errors)
    return order


def _validate_node(prompt, node_id, node_classes) -> list:
    node = prompt[node_id]
    ctype = node["class_type"]
    cls = node_classes[ctype]
    schema = get_schema(node_classes, ctype)
    inputs = node.setdefault("inputs", {})
    where = f"node {node_id} ({ctype})"
    validator = getattr(cls, "VALIDATE_INPUTS", None)
    v_args, v_kwargs = (), False
    if validator is not None:
        spec = inspect.getfullargspec(validator)
        v_args, v_kwargs = tuple(spec.args), spec.varkw is not None
    errors, received_types = [], {}
    for spec in schema.inputs:
        if spec.category == "hidden":
            continue
        name = spec.name
        if name not in inputs:
            if spec.category == "required":
                errors.append(f"{where}: required input {name!r} ({spec.type_name}) is missing: "
                              "connect it or give it a value")
            continue
        value = inputs[name]
        if is_link(value):
            src = prompt[value[0]]
            returns = tuple(getattr(node_classes[src["class_type"]], "RETURN_TYPES", ()))
            index = int(value[1])
            if not 0 <= index < len(returns):
                errors.append(f"{where}: input {name!r} links to output {index} of node {value[0]} "
                              f"({src['class_type']}), which has {len(returns)} outputs: reconnect it")
                continue
            received_types[name] = returns[index]
            if "input_types" not in v_args and not types_match(returns[index], spec.type):
                errors.append(
                    f"{where}: input {name!r} expects {spec.type_name} but is linked to output "
                    f"{index} of node {value[0]} ({src['class_type']}), which gives "
                    f"{returns[index]}: connect a {spec.type_name} output instead")
            continue
        if isinstance(value, Mapping) and "__value__" in value:
            value = inputs[name] = value["__value__"]
        problem = _check_value(spec, value, checks=name not in v_args and not v_kwargs)
        if isinstance(problem, str):
            errors.append(f"{where}: input {name!r} {problem}")
        else:
            inputs[name] = problem[0]
    if validator is not None and not errors:
        errors += _custom_validation(cls, validator, v_args, v_kwargs, inputs, received_types, where)
    return errors


def _check_value(spec, value, checks: bool):
    """(converted value,) or a message ending in the fix (the rules: core/input_rules.py)."""
    kind = spec.type_name
    if kind not in CONVERT and kind not in ("BOOLEAN", "COMBO", "*"):
        return f"is the constant {_short(value)}, but a {kind} comes from a link: connect a {kind} output"
    if kind == "*":
        return (value,)
    return input_rules.check(spec.combo_options if kind == "COMBO" else kind, spec.options, value, limits=checks)


def _custom_validation(cls, validator, v_args, v_kwargs, inputs, received_types, where) -> list:
    """Call VALIDATE_INPUTS with the constant inputs (linked ones are None), as ComfyUI does."""
    call = {}
    for name, value in inputs.items():
        if name in v_args or v_kwargs:
            call[name] = None if is_link(value) else value
    if "input_types" in v_args:
        call["input_types"] = received_types
    for name, value in hidden_values(cls, None, None, None).items():
        if name in v_args or v_kwargs:
            call[name] = value[0]
    try:
        result = validator(**call)
    except Exception as exc:  # a crashing validator is a validation error, not a crash
        return [f"{where}: VALIDATE_INPUTS raised {type(exc).__name__}: {exc}: fix the inputs "
                f"{sorted(call)}"]
    if result is True:
        return []
    detail = "" if result is False else f": {result}"
    names = ", ".join(repr(n) for n in call if n != "input_types") or "(none)"
    return [f"{where}: inputs {names} with values "
            f"{ {k: v for k, v in call.items() if k != 'input_types'} } failed the node's own "
            f"validation{detail}"]
