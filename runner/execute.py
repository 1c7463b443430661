"""In-process execution of an API-format prompt with ComfyUI's semantics.

Only the nodes the output nodes (OUTPUT_NODE = True) need run, in topological order. Inputs are
lists (ComfyUI's list mapping): a node without INPUT_IS_LIST is called once per element, shorter
lists repeating their last element; outputs flagged in OUTPUT_IS_LIST are flattened. A node may
return a tuple or ``{"ui": ..., "result": ...}``.

Node instances live in a module-level runner keyed by (node id, class), so a warm re-run in the
same process reuses them (as ComfyUI does). Outputs are cached too, keyed by class + IS_CHANGED +
inputs (recursively through links), so re-running an identical prompt executes nothing unchanged;
``cache=False`` switches that off.
"""
from __future__ import annotations

import asyncio
import copy
import hashlib
import inspect
import json
import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .validate import hidden_values, is_link, validate_prompt
from .workflow import FRONTEND_ONLY, WorkflowError, apply_sets, load_workflow, to_api_prompt, ui_with_sets

log = logging.getLogger(__name__)


class NodeExecutionError(RuntimeError):
    """A node raised while running; names the node, its class and the exception."""

    def __init__(self, node_id, class_type, exc):
        self.node_id, self.class_type = node_id, class_type
        super().__init__(f"node {node_id} ({class_type}) failed: {type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class ExecutionResult:
    outputs: dict  # node id -> ui dict, as in ComfyUI's /history outputs
    files: list  # Paths of the images written (SaveImage and PreviewImage)
    seconds: float
    prompt_id: str = ""
    executed: tuple = field(default=())  # node ids that actually ran (not served from the cache)


class _Runner:
    """Process-wide state: node instances per (node id, class) and the output cache."""

    def __init__(self):
        self.lock = threading.RLock()
        self.instances: dict = {}
        self.outputs: dict = {}  # signature -> (outputs: list of lists, ui: dict)

    def clear(self):
        with self.lock:
            self.instances.clear()
            self.outputs.clear()


RUNNER = _Runner()
_PACK_ERROR: list = []


def clear_caches() -> None:
    """Forget cached node instances and outputs (the next run is cold)."""
    RUNNER.clear()


def _pack_classes() -> dict:
    try:
        from .. import NODE_CLASS_MAPPINGS  # noqa: PLC0415 - the package root imports us
    except ImportError as exc:  # a runner used outside its package, or a broken pack
        if not _PACK_ERROR:
            _PACK_ERROR.append(exc)
            log.warning("the pack's nodes could not be imported (%s); only stand-ins are available", exc)
        return {}
    return dict(NODE_CLASS_MAPPINGS)


def node_class_mappings(node_classes: Mapping | None = None, needed=()) -> dict:
    """Stand-ins plus ``node_classes`` (or, when None, the pack's NODE_CLASS_MAPPINGS).

    The pack is imported only when ``needed`` names a class the stand-ins do not provide.
    """
    from .stand_ins import STAND_IN_CLASSES  # noqa: PLC0415

    classes = dict(STAND_IN_CLASSES)
    if node_classes is not None:
        classes.update(node_classes)
    elif any(t not in classes and t not in FRONTEND_ONLY for t in needed):
        classes.update(_pack_classes())
    return classes


def _input_data(node, cls, node_id, outputs, prompt, extra_pnginfo) -> dict:
    declared = cls.INPUT_TYPES()
    known = set(declared.get("required") or {}) | set(declared.get("optional") or {})
    data = {}
    for name, value in node.get("inputs", {}).items():
        if is_link(value):
            data[name] = outputs[value[0]][int(value[1])]
        elif name in known:
            data[name] = [value]
    data.update(hidden_values(cls, node_id, prompt, extra_pnginfo))
    return data


def map_node_over_list(obj, data: dict, func: str, on_call=None) -> list:
    """ComfyUI's list mapping: one call with the lists, or one per element (last one repeats)."""
    f = getattr(obj, func)

    def call(kwargs):
        if on_call is not None:
            on_call()
        result = f(**kwargs)
        return asyncio.run(result) if inspect.iscoroutine(result) else result

    if getattr(obj, "INPUT_IS_LIST", False):
        return [call(data)]
    if not data:
        return [call({})]
    length = max(len(v) for v in data.values())
    return [call({k: v[i if len(v) > i else -1] for k, v in data.items()}) for i in range(length)]


def _merge(returns: list, cls) -> tuple[list, dict]:
    """(outputs: one list per output socket, ui) from the per-call returns."""
    results, uis = [], []
    n_out = len(getattr(cls, "RETURN_TYPES", ()))
    for r in returns:
        if isinstance(r, dict):
            if "expand" in r:
                raise NotImplementedError("node expansion ('expand') is not supported headless: "
                                          "run this workflow in ComfyUI (--server URL)")
            if "ui" in r and r["ui"] is not None:
                uis.append(r["ui"])
            if "result" in r:
                results.append(tuple(r["result"]))
        elif r is None:
            results.append(())
        else:
            results.append(tuple(r))
    if results and any(len(r) < n_out for r in results):
        raise ValueError(f"returned {min(len(r) for r in results)} values but RETURN_TYPES has {n_out}")
    flags = list(getattr(cls, "OUTPUT_IS_LIST", None) or [False] * n_out)
    flags += [False] * (n_out - len(flags))
    outputs = []
    for i in range(n_out if results else 0):
        if flags[i]:
            outputs.append([x for r in results for x in r[i]])
        else:
            outputs.append([r[i] for r in results])
    ui = {k: [y for u in uis for y in u[k]] for k in uis[0]} if uis else {}
    return outputs, ui


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, default=repr, allow_nan=True)


def _signatures(prompt, order, classes, output_dir) -> dict:
    """Per node: a digest of class, IS_CHANGED and inputs (links through their source's digest)."""
    sigs = {}
    for node_id in order:
        node, cls = prompt[node_id], classes[prompt[node_id]["class_type"]]
        changed = None
        if hasattr(cls, "IS_CHANGED"):
            data = {k: [None if is_link(v) else v] for k, v in node["inputs"].items()}
            data.update(hidden_values(cls, node_id, prompt, None))  # as ComfyUI's get_input_data
            wanted = inspect.getfullargspec(cls.IS_CHANGED)
            if wanted.varkw is None:
                data = {k: v for k, v in data.items() if k in wanted.args}
            try:
                changed = map_node_over_list(cls, data, "IS_CHANGED")
            except Exception as exc:  # as in ComfyUI: a failing IS_CHANGED means "always re-run"
                log.warning("node %s IS_CHANGED failed: %s", node_id, exc)
                changed = float("nan")
            if any(isinstance(c, float) and math.isnan(c) for c in
                   (changed if isinstance(changed, list) else [changed])):
                changed = uuid.uuid4().hex  # NaN never equals itself: never served from the cache
        hidden = set((cls.INPUT_TYPES().get("hidden") or {}).values())
        parts = [node["class_type"], _canonical(changed),
                 node_id if getattr(cls, "NOT_IDEMPOTENT", False) or "UNIQUE_ID" in hidden else None,
                 str(output_dir) if getattr(cls, "OUTPUT_NODE", False) else None]
        for name in sorted(node["inputs"]):
            value = node["inputs"][name]
            parts.append([name, ["link", sigs[value[0]], int(value[1])] if is_link(value)
                          else _canonical(value)])
        sigs[node_id] = hashlib.sha256(_canonical(parts).encode()).hexdigest()
    return sigs


def _files(ui_by_node: dict, output_dir: Path) -> list:
    from .stand_ins import temp_directory  # noqa: PLC0415

    files = []
    for ui in ui_by_node.values():
        for item in ui.get("images", []) if isinstance(ui, dict) else []:
            if isinstance(item, dict) and "filename" in item:
                base = temp_directory() if item.get("type") == "temp" else output_dir
                files.append(base / (item.get("subfolder") or "") / item["filename"])
    return files


def execute_prompt(api_prompt: Mapping, *, node_classes: Mapping | None = None, output_dir=None,
                   extra_pnginfo: dict | None = None, cache: bool = True,
                   prompt_id: str | None = None) -> ExecutionResult:
    """Validate and run an API-format prompt in this process.

    Raises WorkflowError (nothing runs) when validation fails and NodeExecutionError when a node
    raises. ``output_dir`` overrides the host's output directory for this run.
    """
    from ..core import host  # noqa: PLC0415

    start = time.perf_counter()
    try:
        prompt = copy.deepcopy(dict(api_prompt))
    except RecursionError:
        raise WorkflowError("the prompt's JSON is nested too deeply to be a workflow: save it again "
                            "from the editor") from None
    classes = node_class_mappings(node_classes, {n.get("class_type") for n in prompt.values()
                                                 if isinstance(n, Mapping) and isinstance(n.get("class_type"), str)})
    order = validate_prompt(prompt, classes)
    prompt_id = prompt_id or str(uuid.uuid4())
    previous = host.set_output_directory(output_dir) if output_dir is not None else None
    try:
        out_dir = host.output_directory()
        with RUNNER.lock:
            ui_by_node, executed = _run(prompt, order, classes, out_dir, extra_pnginfo, cache, host)
        files = _files(ui_by_node, out_dir)
    finally:
        if output_dir is not None:
            host.set_output_directory(previous)
    return ExecutionResult(ui_by_node, files, time.perf_counter() - start, prompt_id, tuple(executed))


def _run(prompt, order, classes, out_dir, extra_pnginfo, cache, host):
    sigs = _signatures(prompt, order, classes, out_dir)
    outputs, ui_by_node, executed = {}, {}, []
    for node_id in order:
        node = prompt[node_id]
        ctype = node["class_type"]
        cls = classes[ctype]
        host.check_interrupt()
        hit = RUNNER.outputs.get(sigs[node_id]) if cache else None
        if hit is None:
            obj = RUNNER.instances.get((node_id, ctype))
            if obj is None:
                obj = RUNNER.instances[(node_id, ctype)] = cls()
            data = _input_data(node, cls, node_id, outputs, prompt, extra_pnginfo)
            log.debug("running node %s (%s)", node_id, ctype)
            try:
                returns = map_node_over_list(obj, data, cls.FUNCTION, host.check_interrupt)
                hit = _merge(returns, cls)
            except host.interrupt_exception_types():
                raise
            except Exception as exc:
                raise NodeExecutionError(node_id, ctype, exc) from exc
            executed.append(node_id)
            if cache:
                RUNNER.outputs[sigs[node_id]] = hit
        outputs[node_id] = hit[0]
        if hit[1]:
            ui_by_node[node_id] = hit[1]
    if cache:  # keep what this prompt used, as ComfyUI's classic cache does
        keep = set(sigs.values())
        for key in [k for k in RUNNER.outputs if k not in keep]:
            del RUNNER.outputs[key]
    return ui_by_node, executed


def run_workflow(path, *, sets=(), node_classes: Mapping | None = None, output_dir=None,
                 input_dir=None, cache: bool = True) -> ExecutionResult:
    """Load a UI- or API-format workflow, apply ``--set`` items, validate and run it."""
    from ..core import host  # noqa: PLC0415

    workflow = load_workflow(path)
    if workflow.format == "ui":
        needed = {n.get("type") for n in workflow.data["nodes"] if isinstance(n, dict) and isinstance(n.get("type"), str)}
    else:
        needed = {n.get("class_type") for n in workflow.data.values() if isinstance(n.get("class_type"), str)}
    classes = node_class_mappings(node_classes, needed)
    previous = host.set_input_directory(input_dir) if input_dir is not None else None
    try:
        prompt = apply_sets(to_api_prompt(workflow, classes), sets, classes)
        # the workflow stored in saved PNGs holds the --set values too, so it reproduces the image
        ui = ui_with_sets(workflow.ui, prompt, sets, classes)
        extra = {"workflow": ui} if ui is not None else None
        return execute_prompt(prompt, node_classes=classes, output_dir=output_dir,
                              extra_pnginfo=extra, cache=cache)
    finally:
        if input_dir is not None:
            host.set_input_directory(previous)


__all__ = ["ExecutionResult", "NodeExecutionError", "WorkflowError", "clear_caches",
           "execute_prompt", "node_class_mappings", "run_workflow"]
