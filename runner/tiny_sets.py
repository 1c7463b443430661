"""``--set`` items that switch a workflow's loaders to the offline tiny models.

``tiny_model_sets(workflow)`` reads the workflow (UI or API format), finds every loader node by
what it returns (LLMA_CAPTIONER, LLMA_LANGUAGE_MODEL, LLMA_PIPELINE, LLMA_IMAGE_ENCODER, core
CheckpointLoaderSimple's MODEL) and returns ``NODE_ID.INPUT=VALUE`` items naming the tiny model
of ``python -m llm_assist make-tiny-models`` (layout in docs/ARCHITECTURE.md) for its model combo,
the first combo input its INPUT_TYPES declares. A pipeline that feeds a Repair node, or whose
current choice names an inpainting model, gets the 9-channel tiny inpaint pipeline; one whose choice
names FLUX.1 gets the tiny FLUX.1 pipeline. Load Image
Folder nodes get ``path=image_folder`` and Connect Model Server nodes ``base_url=server_url`` when
one is given. Used by the tests, the demo and the ComfyUI integration test.
"""
from __future__ import annotations

from .workflow import get_schema, load_workflow

TINY_BY_RETURN = {
    "LLMA_CAPTIONER": "tiny-blip",
    "LLMA_LANGUAGE_MODEL": "tiny-qwen2-chat",
    "LLMA_PIPELINE": "tiny-sd15",
    "LLMA_IMAGE_ENCODER": "tiny-clip",
}
TINY_INPAINT_PIPELINE = "tiny-sd15-inpaint"
TINY_FLUX_PIPELINE = "tiny-flux"  # for a current choice that names a FLUX.1 model (not FLUX.2)
TINY_CHECKPOINT = "tiny-sd15.safetensors"
INPAINT_CONSUMERS = frozenset({"LLMAssistRepair"})
SKIPPED_MODES = (2, 4)  # muted, bypassed


def _nodes(workflow):
    """(id, class, {input: value or ("link", source id)}) for the active nodes of either format."""
    if workflow.format == "api":
        for node_id, node in workflow.data.items():
            inputs = {k: (("link", str(v[0])) if isinstance(v, list) and len(v) == 2 else v)
                      for k, v in (node.get("inputs") or {}).items()}
            yield str(node_id), node.get("class_type"), inputs
        return
    links = {}
    for link in workflow.data.get("links") or []:
        if isinstance(link, dict):
            links[link["id"]] = str(link["origin_id"])
        elif link:
            links[link[0]] = str(link[1])
    for node in workflow.data["nodes"]:
        if node.get("mode", 0) in SKIPPED_MODES:
            continue
        inputs = {slot["name"]: ("link", links.get(slot["link"])) for slot in node.get("inputs") or []
                  if slot.get("link") is not None}
        yield str(node["id"]), node.get("type"), inputs


def _model_input(schema) -> str | None:
    for spec in schema.inputs:
        if spec.category == "required" and spec.combo_options is not None:
            return spec.name
    return None


def _current_value(workflow, node_id: str, name: str, schema):
    """The saved value of a widget (UI widgets_values or API inputs), or None."""
    if workflow.format == "api":
        return (workflow.data[node_id].get("inputs") or {}).get(name)
    node = next(n for n in workflow.data["nodes"] if str(n["id"]) == node_id)
    values = node.get("widgets_values") or []
    if isinstance(values, dict):
        return values.get(name)
    index = 0
    for spec in schema.widgets:
        if spec.name == name:
            return values[index] if index < len(values) else None
        index += spec.widget_value_count
    return None


def tiny_model_sets(workflow_path, image_folder: str | None = None, node_classes=None,
                    server_url: str | None = None) -> list[str]:
    """``NODE_ID.INPUT=VALUE`` items switching every loader of the workflow to the tiny models.

    ``image_folder``, when given, is set as the path of every Load Image Folder node; by default the
    path saved in the workflow stays (the examples use ``dataset`` in the input folder, which
    ``core.sample_images.write_example_images`` fills). ``server_url``, when given, is set as the
    base_url of every Connect Model Server node (e.g. a test's ``transformers serve``).
    """
    from .execute import node_class_mappings  # noqa: PLC0415

    workflow = load_workflow(workflow_path)
    nodes = list(_nodes(workflow))
    classes = node_class_mappings(node_classes, needed={ctype for _, ctype, _ in nodes})
    consumers: dict = {}
    for node_id, ctype, inputs in nodes:
        for value in inputs.values():
            if isinstance(value, tuple) and value[0] == "link":
                consumers.setdefault(value[1], set()).add(ctype)
    sets = []
    for node_id, ctype, _ in nodes:
        if ctype == "CheckpointLoaderSimple":
            sets.append(f"{node_id}.ckpt_name={TINY_CHECKPOINT}")
            continue
        schema = get_schema(classes, ctype)
        if schema is None:
            continue
        if ctype == "LLMAssistLoadImageFolder" and image_folder is not None and schema.input("path"):
            sets.append(f"{node_id}.path={image_folder}")
            continue
        if ctype == "LLMAssistConnectModelServer" and server_url is not None and schema.input("base_url"):
            sets.append(f"{node_id}.base_url={server_url}")
            continue
        returns = [t for t in schema.outputs if t in TINY_BY_RETURN]
        name = _model_input(schema)
        if len(returns) != 1 or name is None:
            continue
        tiny = TINY_BY_RETURN[returns[0]]
        if returns[0] == "LLMA_PIPELINE":
            current = str(_current_value(workflow, node_id, name, schema) or "")
            if consumers.get(node_id, set()) & INPAINT_CONSUMERS or "inpaint" in current.lower():
                tiny = TINY_INPAINT_PIPELINE
            elif "flux" in current.lower() and "flux.2" not in current.lower() and "flux2" not in current.lower():
                tiny = TINY_FLUX_PIPELINE
        sets.append(f"{node_id}.{name}={tiny}")
    return sets


# ComfyUI's own sampler nodes: the headless runner has no sampler, and ComfyUI cannot load the tiny
# checkpoint (its model detection needs real layer sizes), so tiny runs mute this branch.
NATIVE_SAMPLER_NODES = frozenset({"CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler",
                                  "VAEDecode"})


def without_native_branch(ui: dict) -> tuple[dict, set]:
    """A copy of a UI-format workflow with the native-sampler nodes, and every node fed only by muted
    nodes, muted (mode 2); returns ``(workflow, muted node ids)``."""
    import copy

    wf = copy.deepcopy(ui)
    origin = {link[0]: link[1] for link in wf.get("links") or []}
    muted = {n["id"] for n in wf["nodes"] if n.get("type") in NATIVE_SAMPLER_NODES}
    changed = True
    while changed:
        changed = False
        for node in wf["nodes"]:
            sources = {origin[i["link"]] for i in node.get("inputs") or [] if i.get("link") is not None}
            if node["id"] not in muted and sources and sources <= muted:
                muted.add(node["id"])
                changed = True
    for node in wf["nodes"]:
        if node["id"] in muted:
            node["mode"] = 2
    return wf, muted


__all__ = ["tiny_model_sets", "without_native_branch", "NATIVE_SAMPLER_NODES"]
