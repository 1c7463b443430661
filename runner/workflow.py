"""Workflow files: load (UI or API format) and convert the editor's UI format to API format.

The conversion follows what the editor's ``graphToPrompt`` sends to ``POST /prompt``:
muted nodes (mode 2) and frontend-only nodes (Note, MarkdownNote, Reroute, PrimitiveNode) are
dropped, links are followed through Reroutes and bypassed nodes (mode 4), a PrimitiveNode's value
feeds the widget it is linked to, and ``widgets_values`` map onto the widget inputs in
``INPUT_TYPES`` order (skipping the ``control_after_generate`` value after a seed and the extra
value an image-upload widget adds). A linked input overrides its widget value.

Node schemas come either from node classes (in-process) or from a server's ``/object_info``.
"""
from __future__ import annotations

import collections
import copy
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import WorkflowError, malformed, unknown_class_message  # noqa: F401 - WorkflowError, malformed re-exported

FRONTEND_ONLY = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")  # the editor's seed control widget
MODE_MUTED = 2
MODE_BYPASS = 4

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- schemas
@dataclass(frozen=True)
class InputSpec:
    """One entry of INPUT_TYPES: name, type (a string, or a list of combo options), options."""

    name: str
    type: Any
    options: Mapping = field(default_factory=dict)
    category: str = "required"

    @property
    def combo_options(self) -> list | None:
        if isinstance(self.type, (list, tuple)):
            return list(self.type)
        if self.type == "COMBO":
            return list(self.options.get("options", []))
        return None

    @property
    def type_name(self) -> str:
        return "COMBO" if self.combo_options is not None else str(self.type)

    @property
    def is_widget(self) -> bool:
        if self.category == "hidden" or self.options.get("forceInput"):
            return False
        return self.type_name in WIDGET_TYPES

    @property
    def has_control_value(self) -> bool:
        """The editor stores a control_after_generate value ("fixed", "randomize"...) after it: when
        the input asks for one, or (unless it says False) for an INT named seed / noise_seed."""
        asked = self.options.get("control_after_generate")
        if asked is not None:
            return bool(asked)
        return self.type_name == "INT" and self.name in ("seed", "noise_seed")

    @property
    def widget_value_count(self) -> int:
        return 1 + int(self.has_control_value) + int(bool(self.options.get("image_upload")))


@dataclass(frozen=True)
class NodeSchema:
    class_type: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple = ()
    output_node: bool = False

    def input(self, name: str) -> InputSpec | None:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        return None

    @property
    def widgets(self) -> list[InputSpec]:
        return [s for s in self.inputs if s.is_widget]


def _spec(name, entry, category) -> InputSpec:
    if isinstance(entry, str):  # hidden inputs: "PROMPT", "UNIQUE_ID", ...
        return InputSpec(name, entry, {}, category)
    entry = list(entry)
    options = entry[1] if len(entry) > 1 and isinstance(entry[1], Mapping) else {}
    return InputSpec(name, entry[0], dict(options), category)


def schema_from_class(class_type: str, cls) -> NodeSchema:
    types = cls.INPUT_TYPES()
    inputs = [
        _spec(name, entry, category)
        for category in ("required", "optional", "hidden")
        for name, entry in (types.get(category) or {}).items()
    ]
    return NodeSchema(class_type, tuple(inputs), tuple(getattr(cls, "RETURN_TYPES", ())),
                      getattr(cls, "OUTPUT_NODE", False) is True)


def schema_from_object_info(class_type: str, info: Mapping) -> NodeSchema:
    """A schema from one entry of a server's GET /object_info."""
    declared = info.get("input") or {}
    order = info.get("input_order") or {}
    inputs = []
    for category in ("required", "optional", "hidden"):
        entries = declared.get(category) or {}
        names = list(order.get(category) or entries.keys())
        names += [n for n in entries if n not in names]
        inputs += [_spec(name, entries[name], category) for name in names if name in entries]
    return NodeSchema(class_type, tuple(inputs), tuple(info.get("output") or ()),
                      bool(info.get("output_node")))


def get_schema(node_classes: Mapping, class_type: str) -> NodeSchema | None:
    """Schema of ``class_type`` from a mapping of node classes or of /object_info entries."""
    entry = node_classes.get(class_type)
    if entry is None:
        return None
    if isinstance(entry, NodeSchema):
        return entry
    if isinstance(entry, Mapping):
        return schema_from_object_info(class_type, entry)
    return schema_from_class(class_type, entry)


# ---------------------------------------------------------------- loading
@dataclass(frozen=True)
class Workflow:
    """A loaded workflow: ``data`` is the JSON as saved; ``format`` is "ui" or "api"."""

    data: dict
    format: str
    source: str | None = None

    @property
    def ui(self) -> dict | None:
        return self.data if self.format == "ui" else None


def load_workflow(path_or_dict) -> Workflow:
    """Load a workflow file (or dict) in the editor's UI format or in API format."""
    source = None
    if isinstance(path_or_dict, Workflow):
        return path_or_dict
    if isinstance(path_or_dict, (str, os.PathLike)):
        source = str(path_or_dict)
        try:
            # utf-8-sig: a UTF-8 byte-order mark (Windows editors write one) is accepted
            data = json.loads(Path(path_or_dict).read_text(encoding="utf-8-sig"))
        except FileNotFoundError:
            raise WorkflowError(f"workflow file {source} does not exist: check the path") from None
        except RecursionError:
            raise WorkflowError(f"cannot read workflow {source}: its JSON is nested too deeply to be a "
                                "workflow: save it again from the editor") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WorkflowError(f"cannot read workflow {source}: {exc}: save it again as JSON") from None
    else:
        data = copy.deepcopy(path_or_dict)
    if not isinstance(data, dict):
        raise WorkflowError(f"workflow {source or ''} is a {type(data).__name__}, not a JSON object")
    if isinstance(data.get("nodes"), list):
        return Workflow(data, "ui", source)
    if isinstance(data.get("prompt"), dict) and "nodes" not in data:  # a saved POST /prompt body
        data = data["prompt"]
    bad = [k for k, v in data.items() if not (isinstance(v, dict) and "class_type" in v)]
    if bad or not data:
        raise WorkflowError(
            f"workflow {source or ''} is neither UI format (a 'nodes' list) nor API format "
            f"({{id: {{class_type, inputs}}}}); entries without class_type: {bad[:5]}: "
            "save it from the editor with Save or Export (API)")
    return Workflow(data, "api", source)


# ---------------------------------------------------------------- UI -> API
def _links(ui: dict) -> dict:
    """link id -> (origin id, origin slot, target id, target slot, type); 0.4 lists or 1.0 objects."""
    out = {}
    for link in ui.get("links") or []:
        if isinstance(link, Mapping):
            out[link["id"]] = (link["origin_id"], link["origin_slot"], link["target_id"],
                               link["target_slot"], link.get("type"))
        elif link:
            out[link[0]] = tuple(link[1:6])
    return out


def _describe(node) -> str:
    return f"node {node.get('id')} ({node.get('type')})"


def _resolve_link(link_id, want_type, nodes, links, errors, where):
    """Follow a link to the real source: ("link", [id, slot]), ("value", v) or (None, reason)."""
    seen = set()
    while True:
        if link_id is None:
            return None, "not connected"
        if link_id in seen:
            errors.append(f"{where}: its link {link_id} loops through reroutes/bypassed nodes: "
                          "remove the loop in the editor")
            return None, "loop"
        seen.add(link_id)
        if link_id not in links:
            errors.append(f"{where}: link {link_id} is not in the workflow's links list: "
                          "reconnect the input in the editor and save again")
            return None, "bad link"
        origin_id, origin_slot = links[link_id][0], links[link_id][1]
        origin = nodes.get(origin_id)
        if origin is None:
            errors.append(f"{where}: links to node {origin_id}, which is not in the workflow: "
                          "reconnect the input")
            return None, "missing node"
        mode = origin.get("mode", 0)
        if origin.get("type") == "Reroute":
            link_id = ((origin.get("inputs") or [{}])[0]).get("link")
        elif origin.get("type") == "PrimitiveNode":
            values = origin.get("widgets_values") or []
            if not values:
                errors.append(f"{where}: its PrimitiveNode {origin_id} has no value: set one")
                return None, "empty primitive"
            return "value", values[0]
        elif mode == MODE_MUTED:
            return None, f"its source node {origin_id} is muted"
        elif mode == MODE_BYPASS:
            inputs = origin.get("inputs") or []
            order = [i for i in [origin_slot] + list(range(len(inputs))) if 0 <= i < len(inputs)]
            link_type = links[link_id][4]
            match = next((i for wanted in (want_type, link_type) for i in order
                          if inputs[i].get("type") == wanted), None)
            if match is None:
                return None, f"its source node {origin_id} is bypassed and has no {want_type} input"
            link_id = inputs[match].get("link")
        else:
            return "link", [str(origin_id), int(origin_slot)]


def _widget_values(node, schema: NodeSchema, errors) -> dict:
    values = node.get("widgets_values")
    widgets = schema.widgets
    if values is None:
        values = []
    if isinstance(values, Mapping):  # some nodes save their widgets by name
        return {s.name: values[s.name] for s in widgets if s.name in values}
    expected = sum(s.widget_value_count for s in widgets)
    if len(values) > expected:  # the editor ignores values past the last widget: so do we, and say so
        log.warning("%s: has %d widget values but its widgets need %d: the extra ones at the end are ignored "
                    "(an input was removed since the workflow was saved; save it again to drop them)",
                    _describe(node), len(values), expected)
        values = list(values)[:expected]
    out, i = {}, 0
    for spec in widgets:
        control = values[i + 1] if spec.has_control_value and i + 1 < len(values) else None
        if control is not None and control not in CONTROL_VALUES:  # the values are shifted: not the layout saved
            layout = ", ".join(s.name + (" (+control_after_generate)" if s.has_control_value else "")
                               + (" (+upload)" if s.options.get("image_upload") else "") for s in widgets)
            errors.append(
                f"{_describe(node)}: has {len(values)} widget values {values!r} but its widgets [{layout}] need "
                f"{expected}, and {control!r} after {spec.name!r} is not a control_after_generate value: the node's "
                "inputs changed since the workflow was saved; open it in the editor with this version of the pack "
                "and save it again")
            return {}
        if i < len(values):
            out[spec.name] = values[i]
        else:  # saved before this input was added: the editor shows its default, and so do we
            default = spec.options.get("default", (spec.combo_options or [None])[0])
            if default is None:
                layout = ", ".join(s.name + (" (+control_after_generate)" if s.has_control_value else "")
                                   + (" (+upload)" if s.options.get("image_upload") else "") for s in widgets)
                errors.append(
                    f"{_describe(node)}: has {len(values)} widget values {values!r} but its widgets "
                    f"[{layout}] need {expected}, and {spec.name!r} has no default: the node's inputs changed since "
                    "the workflow was saved; open it in the editor with this version of the pack and save it again")
                return {}
            out[spec.name] = default
        i += spec.widget_value_count
    if len(values) < expected:
        log.warning("%s: has %d widget values but its widgets need %d: the widgets added since the workflow was "
                    "saved get their defaults (as in the editor); save it again to store them",
                    _describe(node), len(values), expected)
    return out


def _subgraph_ids(ui: dict) -> set:
    return {s.get("id") for s in ((ui.get("definitions") or {}).get("subgraphs") or [])}


def to_api_prompt(workflow, node_classes: Mapping, *, server: bool = False) -> dict:
    """The API-format prompt of a workflow (see _to_api_prompt); malformed JSON is a WorkflowError.

    ``server``: the schemas are a server's /object_info (messages then give the fixes that work there).
    """
    try:
        return _to_api_prompt(workflow, node_classes, server)
    except RecursionError:
        raise WorkflowError("the workflow's JSON is nested too deeply to be a workflow: save it again "
                            "from the editor") from None
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
        if isinstance(exc, WorkflowError):
            raise
        raise malformed(exc, "the workflow") from None


def _to_api_prompt(workflow, node_classes: Mapping, server: bool = False) -> dict:
    """API-format prompt ``{id: {class_type, inputs, _meta}}`` for a UI- or API-format workflow.

    ``node_classes`` maps class_type to a node class or to a /object_info entry. Raises
    WorkflowError listing every problem (unknown class, wrong widget count, broken link).
    """
    workflow = load_workflow(workflow)
    if workflow.format == "api":
        return copy.deepcopy(workflow.data)
    ui = workflow.data
    counts = collections.Counter(n.get("id") for n in ui["nodes"])
    repeated = sorted(str(i) for i, n in counts.items() if n > 1)
    if repeated:
        raise WorkflowError(f"the workflow has several nodes with the same id {', '.join(repeated)}: links and "
                            "--set cannot tell them apart; open it in the editor (which renumbers them) and save again")
    nodes = {n.get("id"): n for n in ui["nodes"]}
    links = _links(ui)
    subgraphs = _subgraph_ids(ui)
    errors: list[str] = []
    prompt: dict = {}
    for node in ui["nodes"]:
        ctype, mode = node.get("type"), node.get("mode", 0)
        if ctype in FRONTEND_ONLY or mode in (MODE_MUTED, MODE_BYPASS):
            continue
        if ctype in subgraphs:
            how = ("a server runs only the expanded prompt the editor sends: unpack it in the editor "
                   "(right-click > Unpack Subgraph) and save, or export the workflow with Export (API)"
                   if server else "the headless runner does not expand it: unpack it in the editor "
                   "(right-click > Unpack Subgraph) or pass --server URL")
            errors.append(f"{_describe(node)} is a subgraph; {how}")
            continue
        schema = get_schema(node_classes, ctype)
        if schema is None:
            errors.append(unknown_class_message(node.get("id"), ctype, server=server))
            continue
        inputs = _widget_values(node, schema, errors)
        for slot in node.get("inputs") or []:
            name = (slot.get("widget") or {}).get("name") or slot.get("name")
            if slot.get("link") is None:
                continue
            kind, value = _resolve_link(slot["link"], slot.get("type"), nodes, links, errors,
                                        f"{_describe(node)} input {name!r}")
            if kind is not None:
                inputs[name] = value
            elif not (schema.input(name) and schema.input(name).is_widget):
                inputs.pop(name, None)
        prompt[str(node.get("id"))] = {"class_type": ctype, "inputs": inputs,
                                       "_meta": {"title": node.get("title") or ctype}}
    if errors:
        raise WorkflowError(errors)
    return prompt


# ---------------------------------------------------------------- --set NODE_ID.INPUT=VALUE
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_set(text: str) -> tuple[str, str, str]:
    """Split ``NODE_ID.INPUT=VALUE`` into (node id, input name, raw value)."""
    key, sep, raw = str(text).partition("=")
    node_id, dot, name = key.strip().partition(".")
    if not sep or not dot or not node_id or not name:
        raise WorkflowError(f"--set {text!r} is not NODE_ID.INPUT=VALUE: write e.g. --set 3.seed=42")
    return node_id, name.strip(), raw


def parse_value(spec: InputSpec, raw: str, where: str):
    """Parse a --set string by the input's declared type (INT, FLOAT, BOOLEAN, STRING, COMBO)."""
    kind = spec.type_name
    try:
        if kind == "INT":
            return int(raw.strip())
        if kind == "FLOAT":
            return float(raw.strip())
    except ValueError:
        raise WorkflowError(f"{where}: {raw!r} is not a {kind} value: give a "
                            f"{'whole number' if kind == 'INT' else 'number'}") from None
    if kind == "BOOLEAN":
        low = raw.strip().lower()
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise WorkflowError(f"{where}: {raw!r} is not a BOOLEAN value: use true or false")
    if kind == "COMBO":  # match non-string options (ints) by their text
        for option in spec.combo_options or []:
            if not isinstance(option, str) and str(option) == raw:
                return option
    return raw


def apply_sets(prompt: dict, sets, node_classes: Mapping) -> dict:
    """Apply ``--set NODE_ID.INPUT=VALUE`` items (strings or (id, input, raw) tuples) in place."""
    errors = []
    for item in sets or ():
        try:
            node_id, name, raw = parse_set(item) if isinstance(item, str) else map(str, item)
            node = prompt.get(node_id)
            if node is None:
                raise WorkflowError(
                    f"--set {node_id}.{name}: there is no node {node_id} in the prompt (muted and "
                    f"frontend-only nodes are dropped): use one of {sorted(prompt, key=_id_key)}")
            schema = get_schema(node_classes, node["class_type"])
            where = f"--set {node_id}.{name} (node {node_id}, {node['class_type']})"
            spec = schema.input(name) if schema is not None else None
            if spec is None or spec.category == "hidden":
                known = [s.name for s in schema.widgets] if schema is not None else []
                raise WorkflowError(f"{where}: the node has no input {name!r}: use one of {known}")
            if spec.type_name not in WIDGET_TYPES:
                raise WorkflowError(f"{where}: {name!r} is a {spec.type_name} socket, not a value: "
                                    "--set only sets INT, FLOAT, BOOLEAN, STRING and COMBO inputs")
            node.setdefault("inputs", {})[name] = parse_value(spec, raw, where)
        except WorkflowError as exc:
            errors += exc.messages
    if errors:
        raise WorkflowError(errors)
    return prompt


def _id_key(node_id):
    return (0, int(node_id), "") if str(node_id).isdigit() else (1, 0, str(node_id))


# ---------------------------------------------------------------- --set in the saved UI workflow
def _ui_set_primitive(ui: dict, nodes: dict, links: dict, link_id, value) -> bool:
    """Follow ``link_id`` through Reroutes; set a PrimitiveNode's value. False if it is not one."""
    seen = set()
    while link_id is not None and link_id in links and link_id not in seen:
        seen.add(link_id)
        origin = nodes.get(links[link_id][0])
        if origin is None:
            return False
        if origin.get("type") == "Reroute":
            link_id = ((origin.get("inputs") or [{}])[0]).get("link")
            continue
        if origin.get("type") == "PrimitiveNode":
            values = origin.get("widgets_values")
            if isinstance(values, list) and values:
                values[0] = value
            else:
                origin["widgets_values"] = [value]
            return True
        return False
    return False


def _ui_unlink(ui: dict, node: dict, slot: dict) -> None:
    """Disconnect ``slot`` of ``node`` in the UI JSON (the link is gone from every list)."""
    link_id = slot.get("link")
    slot["link"] = None
    kept = []
    for link in ui.get("links") or []:
        lid = link.get("id") if isinstance(link, Mapping) else (link[0] if link else None)
        if lid != link_id:
            kept.append(link)
    ui["links"] = kept
    for other in ui.get("nodes") or []:
        for out in other.get("outputs") or []:
            if isinstance(out.get("links"), list) and link_id in out["links"]:
                out["links"] = [x for x in out["links"] if x != link_id]


def ui_with_sets(ui: dict | None, prompt: Mapping, sets, node_classes: Mapping) -> dict | None:
    """A copy of the UI workflow holding the ``--set`` values, so the workflow stored in a saved
    PNG (what the editor restores) reproduces the image: the widget value is replaced; a value fed
    by a PrimitiveNode is set there; a widget input linked to another node's output is
    disconnected (the --set value replaced that link in the prompt that ran)."""
    if ui is None or not sets:
        return ui
    ui = copy.deepcopy(ui)
    nodes = {str(n.get("id")): n for n in ui.get("nodes") or [] if isinstance(n, Mapping)}
    by_id = {n.get("id"): n for n in nodes.values()}
    links = _links(ui)
    for item in sets:
        node_id, name, _ = parse_set(item) if isinstance(item, str) else map(str, item)
        node, entry = nodes.get(node_id), prompt.get(node_id)
        if node is None or entry is None or name not in entry.get("inputs", {}):
            continue
        value = entry["inputs"][name]
        schema = get_schema(node_classes, node.get("type"))
        spec = schema.input(name) if schema is not None else None
        if spec is None or not spec.is_widget:
            import logging  # noqa: PLC0415

            logging.getLogger(__name__).warning(
                "--set %s.%s: %r is not a widget in the editor, so the saved workflow cannot hold its value",
                node_id, name, name)
            continue
        slot = next((s for s in node.get("inputs") or []
                     if ((s.get("widget") or {}).get("name") or s.get("name")) == name), None)
        if slot is not None and slot.get("link") is not None:
            if _ui_set_primitive(ui, by_id, links, slot["link"], value):
                continue
            _ui_unlink(ui, node, slot)
        values = node.get("widgets_values")
        if isinstance(values, Mapping):
            values[name] = value
            continue
        index = 0
        for widget in schema.widgets:
            if widget.name == name:
                break
            index += widget.widget_value_count
        if isinstance(values, list) and index < len(values):
            values[index] = value
    return ui
