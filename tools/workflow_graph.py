"""Build editor-format (UI, version 0.4) workflows from a compact Python description.

A developer tool (``tools/build_workflows.py`` uses it); ComfyUI never imports it. Node schemas
come from the pack's classes (INPUT_TYPES / RETURN_TYPES / RETURN_NAMES) and, for the ComfyUI
core nodes the examples use, from ``CORE_NODES`` below: their inputs and outputs as ComfyUI
0.3.64 declares them (nodes.py, comfy_extras/nodes_preview_any.py; tooltips left out).

The output follows what the editor (frontend 1.27) saves and what ``runner.workflow`` reads:
``widgets_values`` in INPUT_TYPES order, an extra control value ("fixed") after a seed INT
(named seed / noise_seed or flagged control_after_generate), an extra "image" after an upload
combo; ``inputs`` list every socket input (linked or not) and, after them, widget inputs that are
fed by a link (with ``"widget": {"name": ...}``); links are typed with the source output type.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..runner.validate import types_match
from ..runner.workflow import NodeSchema, get_schema

FRONTEND_NOTES = frozenset({"Note", "MarkdownNote"})

# ComfyUI 0.3.64's sampler / scheduler lists (comfy/samplers.py), in its order.
SAMPLERS = [
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
    "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
    "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm",
    "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde",
    "seeds_2", "seeds_3", "sa_solver", "sa_solver_pece", "ddim", "uni_pc", "uni_pc_bh2"]
SCHEDULERS = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
              "linear_quadratic", "kl_optimal"]
MAX_RES = 16384


def _core(required, outputs, names=None, output_node=False, optional=None):
    """An /object_info-shaped entry (the runner's get_schema reads these)."""
    return {"input": {"required": required, "optional": optional or {}},
            "input_order": {"required": list(required), "optional": list(optional or {})},
            "output": list(outputs), "output_name": list(names or outputs), "output_node": output_node}


# Core node definitions as ComfyUI 0.3.64 declares them. Combos listing files are empty lists here
# (their options depend on the user's folders): any value is accepted for them.
CORE_NODES = {
    "LoadImage": _core({"image": [[], {"image_upload": True}]}, ["IMAGE", "MASK"]),
    "SaveImage": _core({"images": ["IMAGE", {}], "filename_prefix": ["STRING", {"default": "ComfyUI"}]},
                       [], output_node=True),
    "PreviewImage": _core({"images": ["IMAGE", {}]}, [], output_node=True),
    "PreviewAny": _core({"source": ["*", {}]}, [], output_node=True),
    "CheckpointLoaderSimple": _core({"ckpt_name": [[], {}]}, ["MODEL", "CLIP", "VAE"]),
    "CLIPTextEncode": _core({"text": ["STRING", {"multiline": True, "dynamicPrompts": True}],
                             "clip": ["CLIP", {}]}, ["CONDITIONING"]),
    "EmptyLatentImage": _core({
        "width": ["INT", {"default": 512, "min": 16, "max": MAX_RES, "step": 8}],
        "height": ["INT", {"default": 512, "min": 16, "max": MAX_RES, "step": 8}],
        "batch_size": ["INT", {"default": 1, "min": 1, "max": 4096}]}, ["LATENT"]),
    "KSampler": _core({
        "model": ["MODEL", {}],
        "seed": ["INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True}],
        "steps": ["INT", {"default": 20, "min": 1, "max": 10000}],
        "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}],
        "sampler_name": [SAMPLERS, {}],
        "scheduler": [SCHEDULERS, {}],
        "positive": ["CONDITIONING", {}],
        "negative": ["CONDITIONING", {}],
        "latent_image": ["LATENT", {}],
        "denoise": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}]}, ["LATENT"]),
    "VAEDecode": _core({"samples": ["LATENT", {}], "vae": ["VAE", {}]}, ["IMAGE"]),
}


def pack_classes() -> dict:
    from .. import NODE_CLASS_MAPPINGS  # noqa: PLC0415

    return dict(NODE_CLASS_MAPPINGS)


def schema(node_type: str, classes: dict | None = None) -> NodeSchema | None:
    """The schema of a pack node (from ``classes``, default the pack's) or of a known core node."""
    classes = pack_classes() if classes is None else classes
    if node_type in classes:
        return get_schema(classes, node_type)
    if node_type in CORE_NODES:
        return get_schema(CORE_NODES, node_type)
    return None


def output_names(node_type: str, classes: dict | None = None) -> list[str]:
    classes = pack_classes() if classes is None else classes
    if node_type in classes:
        cls = classes[node_type]
        return list(getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES)
    return list(CORE_NODES[node_type]["output_name"])


def extra_widget_values(spec) -> list:
    """The values the editor stores after a widget's own value (seed control, upload button)."""
    extras = ["fixed"] if spec.has_control_value else []
    return extras + (["image"] if spec.options.get("image_upload") else [])


def accepts(source_type: str, target_type) -> bool:
    """Whether a link of ``source_type`` may feed an input of ``target_type`` (ComfyUI's rule)."""
    return types_match(source_type, target_type)


# ---------------------------------------------------------------- the builder
@dataclass(frozen=True)
class Out:
    node: "Node"
    slot: int


@dataclass(eq=False)
class Node:
    id: int
    type: str
    values: dict
    title: str | None = None
    text: str | None = None  # Note / MarkdownNote body
    schema: NodeSchema | None = None
    outputs: tuple = ()
    names: tuple = ()
    links_in: dict = field(default_factory=dict)  # input name -> Out

    def __getitem__(self, key) -> Out:
        if isinstance(key, int):
            if not 0 <= key < len(self.outputs):
                raise KeyError(f"{self.type} has {len(self.outputs)} outputs, not slot {key}")
            return Out(self, key)
        for i, (name, kind) in enumerate(zip(self.names, self.outputs)):
            if key == name:
                return Out(self, i)
        matches = [i for i, kind in enumerate(self.outputs) if kind == key]
        if len(matches) == 1:
            return Out(self, matches[0])
        raise KeyError(f"{self.type} has no single output named or typed {key!r}: outputs {list(self.names)}")


class Graph:
    """Collects nodes and links; ``to_ui()`` lays them out and returns the editor's JSON."""

    def __init__(self, classes: dict | None = None):
        self.classes = pack_classes() if classes is None else classes
        self.nodes: list[Node] = []

    def note(self, text: str, title: str = "About this workflow") -> Node:
        node = Node(len(self.nodes) + 1, "MarkdownNote", {}, title=title, text=text)
        self.nodes.append(node)
        return node

    def add(self, node_type: str, title: str | None = None, **values) -> Node:
        found = schema(node_type, self.classes)
        if found is None:
            raise ValueError(f"unknown node type {node_type!r}: neither the pack's nor a core node in CORE_NODES")
        node = Node(len(self.nodes) + 1, node_type, {}, title=title, schema=found,
                    outputs=tuple(found.outputs), names=tuple(output_names(node_type, self.classes)))
        for name, value in values.items():
            spec = found.input(name)
            if spec is None or spec.category == "hidden":
                raise ValueError(f"{node_type} has no input {name!r}: inputs {[s.name for s in found.inputs]}")
            if isinstance(value, Node):
                value = self._pick_output(value, spec)
            if isinstance(value, Out):
                out_type = value.node.outputs[value.slot]
                if not accepts(out_type, spec.type if spec.combo_options is None else "COMBO"):
                    raise ValueError(f"{node_type}.{name} ({spec.type_name}) cannot take "
                                     f"{value.node.type} output {value.slot} ({out_type})")
                node.links_in[name] = value
            elif not spec.is_widget:
                raise ValueError(f"{node_type}.{name} is a {spec.type_name} socket: link a node output to it")
            else:
                node.values[name] = _check_value(node_type, spec, value)
        for spec in found.inputs:
            if spec.category == "required" and not spec.is_widget and spec.name not in node.links_in:
                raise ValueError(f"{node_type}.{spec.name} ({spec.type_name}) is required: link it")
        self.nodes.append(node)
        return node

    @staticmethod
    def _pick_output(source: Node, spec) -> Out:
        fits = [i for i, kind in enumerate(source.outputs) if accepts(kind, spec.type)]
        if len(fits) != 1:
            raise ValueError(f"{source.type} -> {spec.name}: {len(fits)} outputs fit {spec.type_name}; "
                             "pick one with node['NAME']")
        return Out(source, fits[0])

    # ------------------------------------------------------------ serialisation
    def _depths(self) -> dict:
        depth: dict = {}

        def visit(node):
            if node.id not in depth:
                depth[node.id] = 1 + max((visit(o.node) for o in node.links_in.values()), default=-1)
            return depth[node.id]

        for node in self.nodes:
            visit(node)
        return depth

    def to_ui(self) -> dict:
        depth = self._depths()
        links, out_links, in_links = [], {}, {}
        for target in self.nodes:
            for slot, spec in enumerate(_input_slots(target)):
                out = target.links_in.get(spec.name)
                if out is None:
                    continue
                link_id = len(links) + 1
                links.append([link_id, out.node.id, out.slot, target.id, slot, out.node.outputs[out.slot]])
                out_links.setdefault((out.node.id, out.slot), []).append(link_id)
                in_links[(target.id, spec.name)] = link_id
        ui_nodes = {node.id: self._ui_node(node, out_links, in_links) for node in self.nodes}
        self._layout(ui_nodes, depth)
        for index, node in enumerate(sorted(self.nodes, key=lambda n: (depth[n.id], n.id))):
            ui_nodes[node.id]["order"] = index
        return {
            "last_node_id": max((n.id for n in self.nodes), default=0),
            "last_link_id": len(links),
            "nodes": [ui_nodes[n.id] for n in self.nodes],
            "links": links,
            "groups": [],
            "config": {},
            "extra": {"ds": {"scale": 0.8, "offset": [40, 40]}},
            "version": 0.4,
        }

    def _ui_node(self, node: Node, out_links: dict, in_links: dict) -> dict:
        if node.type in FRONTEND_NOTES:
            return {"id": node.id, "type": node.type, "pos": [0, 0], "size": _note_size(node.text),
                    "flags": {}, "order": 0, "mode": 0, "inputs": [], "outputs": [], "title": node.title,
                    "properties": {}, "widgets_values": [node.text], "color": "#432", "bgcolor": "#653"}
        inputs = []
        for spec in _input_slots(node):
            entry = {"name": spec.name, "type": spec.type_name, "link": in_links.get((node.id, spec.name))}
            if spec.is_widget:
                entry["widget"] = {"name": spec.name}
            inputs.append(entry)
        outputs = [{"name": name, "type": kind, "links": out_links.get((node.id, i)), "slot_index": i}
                   for i, (name, kind) in enumerate(zip(node.names, node.outputs))]
        values = []
        for spec in node.schema.widgets:
            values.append(node.values[spec.name] if spec.name in node.values else _default(node.type, spec))
            values += extra_widget_values(spec)
        n_sockets = sum(1 for s in inputs if "widget" not in s)
        ui = {"id": node.id, "type": node.type, "pos": [0, 0], "size": _node_size(node, n_sockets),
              "flags": {}, "order": 0, "mode": 0, "inputs": inputs, "outputs": outputs,
              "properties": {"Node name for S&R": node.type}, "widgets_values": values}
        if node.title:
            ui["title"] = node.title
        return ui

    def _layout(self, ui_nodes: dict, depth: dict, gap_x: int = 60, gap_y: int = 40) -> None:
        columns: dict = {}
        for node in self.nodes:
            if node.type not in FRONTEND_NOTES:
                columns.setdefault(depth[node.id], []).append(node.id)
        x = 0
        spans = []  # (left, right, bottom) of each column
        for col in sorted(columns):
            y = 0
            for node_id in columns[col]:
                ui_nodes[node_id]["pos"] = [x, y]
                y += ui_nodes[node_id]["size"][1] + gap_y + 30  # + the title bar
            width = max(ui_nodes[i]["size"][0] for i in columns[col])
            spans.append((x, x + width, y))
            x += width + gap_x
        for note in (n for n in self.nodes if n.type in FRONTEND_NOTES):
            # under the columns where it ends highest: the emptiest corner of the canvas
            w = ui_nodes[note.id]["size"][0]
            best = min(((max(b for l, r, b in spans if l < left + w and r > left), left)
                        for left, _, _ in spans), default=(0, 0))
            ui_nodes[note.id]["pos"] = [best[1], best[0] + 10]
            spans.append((best[1], best[1] + w, best[0] + 10 + ui_nodes[note.id]["size"][1] + gap_y + 30))


def _input_slots(node: Node) -> list:
    """The node's input slots as the editor numbers them: sockets, then widgets fed by a link."""
    if node.schema is None:
        return []
    sockets = [s for s in node.schema.inputs if s.category != "hidden" and not s.is_widget]
    return sockets + [s for s in node.schema.widgets if s.name in node.links_in]


def _check_value(node_type, spec, value):
    where = f"{node_type}.{spec.name}"
    options = spec.combo_options
    if options is not None:
        if options and value not in options and options != ["(no models found)"]:
            raise ValueError(f"{where}: {value!r} is not one of {options}")
        return value
    kind = spec.type_name
    if kind in ("INT", "FLOAT"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind == "INT" and not isinstance(value, int)):
            raise ValueError(f"{where}: {value!r} is not a {kind}")
        low, high = spec.options.get("min"), spec.options.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(f"{where}: {value} outside [{low}, {high}]")
    elif kind == "BOOLEAN" and not isinstance(value, bool):
        raise ValueError(f"{where}: {value!r} is not a BOOLEAN")
    elif kind == "STRING" and not isinstance(value, str):
        raise ValueError(f"{where}: {value!r} is not a STRING")
    return value


def _default(node_type, spec):
    if "default" in spec.options:
        return spec.options["default"]
    options = spec.combo_options
    if options is not None:
        if not options or options == ["(no models found)"]:
            raise ValueError(f"{node_type}.{spec.name}: a combo of files/models has no default: give a value")
        return options[0]
    return {"INT": spec.options.get("min", 0) if spec.options.get("min", 0) > 0 else 0,
            "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[spec.type_name]


def _node_size(node: Node, n_sockets: int) -> list:
    widgets = node.schema.widgets
    multiline = [s for s in widgets if s.options.get("multiline")]
    width = 400 if multiline or node.type == "PreviewAny" else 320
    rows = max(n_sockets, len(node.outputs))
    height = rows * 22 + 24 * (len(widgets) - len(multiline)) + 110 * len(multiline) + 16
    if node.type == "PreviewAny":
        height += 140  # the preview text box the editor adds
    if any(s.options.get("image_upload") for s in widgets):
        height += 24 + 280  # upload button + the image preview
    return [width, max(height, 60)]


def _note_size(text: str) -> list:
    lines = sum(1 + len(line) // 70 for line in (text or "").splitlines())
    return [560, 40 + 20 * max(lines, 2)]
