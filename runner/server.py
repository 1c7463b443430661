"""``run --server URL``: submit a workflow to a running ComfyUI and fetch its results (urllib only).

UI-format workflows are converted with the server's own ``GET /object_info`` (its widget order),
``--set`` items applied, then ``POST /prompt`` with ``extra_data.extra_pnginfo.workflow`` so the
saved PNGs carry the workflow; ``GET /history/{id}`` is polled until the prompt finishes and the
output images are downloaded through ``GET /view`` into the output folder.
"""
from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path, PurePosixPath

from .execute import ExecutionResult
from .workflow import WorkflowError, apply_sets, load_workflow, to_api_prompt, ui_with_sets

log = logging.getLogger(__name__)


class ServerError(RuntimeError):
    """The server could not be reached, or the prompt failed while running there."""


def object_info_entry(cls) -> dict:
    """A /object_info entry for a V1 node class (the shape ComfyUI serves)."""
    types = cls.INPUT_TYPES()
    return {
        "input": {k: {n: list(v) if isinstance(v, tuple) else v for n, v in (types.get(k) or {}).items()}
                  for k in ("required", "optional", "hidden") if types.get(k)},
        "input_order": {k: list(types[k]) for k in ("required", "optional", "hidden") if types.get(k)},
        "output": list(getattr(cls, "RETURN_TYPES", ())),
        "output_is_list": list(getattr(cls, "OUTPUT_IS_LIST", None) or
                               [False] * len(getattr(cls, "RETURN_TYPES", ()))),
        "output_name": list(getattr(cls, "RETURN_NAMES", None) or getattr(cls, "RETURN_TYPES", ())),
        "name": cls.__name__, "display_name": cls.__name__, "description": getattr(cls, "DESCRIPTION", ""),
        "category": getattr(cls, "CATEGORY", ""), "output_node": getattr(cls, "OUTPUT_NODE", False) is True,
    }


def _request(url: str, data: dict | None = None, timeout: float = 30.0):
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise ServerError(f"cannot reach the ComfyUI server at {url}: {exc}: start ComfyUI "
                          "(python main.py --listen 127.0.0.1 --port 8188) or fix --server") from None


def _json(url: str, data: dict | None = None, timeout: float = 30.0):
    status, body = _request(url, data, timeout)
    try:
        payload = json.loads(body or b"null")
    except json.JSONDecodeError:
        payload = body.decode(errors="replace")
    return status, payload


def prompt_errors(payload) -> list[str]:
    """Messages from a POST /prompt 400 answer: the top error and every node_errors entry."""
    messages = []
    if not isinstance(payload, dict):
        return [f"server rejected the prompt: {payload}"]
    for node_id, entry in sorted((payload.get("node_errors") or {}).items()):
        for err in entry.get("errors", []):
            extra = err.get("extra_info") or {}
            value = f" (value {extra['received_value']!r})" if "received_value" in extra else ""
            messages.append(f"node {node_id} ({entry.get('class_type')}): {err.get('message')}: "
                            f"{err.get('details')}{value}")
    top = payload.get("error")
    if isinstance(top, dict) and (not messages or top.get("type") != "prompt_outputs_failed_validation"):
        messages.insert(0, f"{top.get('message')}: {top.get('details')}".rstrip(": "))
    elif isinstance(top, str):
        messages.insert(0, top)
    return messages or [f"server rejected the prompt: {payload}"]


def _history_errors(entry: dict) -> list[str]:
    messages = []
    for message in (entry.get("status") or {}).get("messages") or []:
        if not isinstance(message, (list, tuple)) or len(message) != 2:
            continue
        kind, data = message
        if kind == "execution_error":
            messages.append(f"node {data.get('node_id')} ({data.get('node_type')}) failed: "
                            f"{data.get('exception_type')}: {data.get('exception_message')}")
        elif kind == "execution_interrupted":
            messages.append(f"the prompt was interrupted at node {data.get('node_id')}")
    return messages or ["the prompt failed on the server (no execution_error message)"]


def _safe_relative(subfolder: str, filename: str) -> Path:
    parts = [p for p in PurePosixPath(str(subfolder).replace("\\", "/")).parts if p not in ("", ".", "/")]
    name = PurePosixPath(str(filename).replace("\\", "/")).name
    if ".." in parts or not name or name == "..":
        raise ServerError(f"server returned an unsafe file path {subfolder!r}/{filename!r}")
    return Path(*parts, name)


def _write_new(target: Path, body: bytes) -> Path:
    """Write ``body`` to ``target``, or to ``name_1.ext`` ... when a file of that name is already
    there: a download never replaces a local file (ComfyUI's counter restarts per server)."""
    from ..core.safe_files import exclusive_path  # noqa: PLC0415

    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        candidate = exclusive_path(target)
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # taken between the check and the open: try the next name
            continue
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
        if candidate != target:
            log.warning("%s exists: the server's file was saved as %s", target, candidate.name)
        return candidate


def cancel_prompt(base: str, prompt_id: str) -> str:
    """Take ``prompt_id`` off the server: dequeue it if it waits, interrupt it if it runs (only
    that prompt: /interrupt with its id). Returns what was done; never raises."""
    try:
        _json(f"{base}/queue", {"delete": [prompt_id]}, timeout=10)
        status, queue = _json(f"{base}/queue", timeout=10)
        running = [item for item in (queue.get("queue_running") or [])
                   if isinstance(item, list) and len(item) > 1 and item[1] == prompt_id] if status == 200 else []
        if running:
            _json(f"{base}/interrupt", {"prompt_id": prompt_id}, timeout=10)
            return "interrupted on the server"
        return "removed from the server's queue"
    except (ServerError, OSError, AttributeError) as exc:
        log.warning("could not cancel prompt %s on %s: %s", prompt_id, base, exc)
        return f"could not be cancelled on the server ({exc})"


def _download(base: str, ui_by_node: dict, output_dir: Path, timeout: float) -> list[Path]:
    files = []
    for ui in ui_by_node.values():
        for items in (ui.values() if isinstance(ui, dict) else []):
            for item in items if isinstance(items, list) else []:
                if not (isinstance(item, dict) and "filename" in item and "type" in item):
                    continue
                rel = _safe_relative(item.get("subfolder") or "", item["filename"])
                query = urllib.parse.urlencode({"filename": item["filename"], "type": item["type"],
                                                "subfolder": item.get("subfolder") or ""})
                status, body = _request(f"{base}/view?{query}", timeout=timeout)
                if status != 200:
                    raise ServerError(f"GET /view for {item['filename']} answered {status}")
                target = output_dir / ("temp" if item["type"] == "temp" else "") / rel
                files.append(_write_new(target, body))
    return files


def run_on_server(path, url: str, *, sets=(), output_dir=None, timeout: float = 600.0,
                  poll_interval: float = 0.25, client_id: str | None = None) -> ExecutionResult:
    """Run a workflow on a ComfyUI server and download its images into ``output_dir``.

    Raises WorkflowError for problems found before or by validation, ServerError otherwise.
    """
    start = time.perf_counter()
    base = url.rstrip("/")
    workflow = load_workflow(path)
    status, object_info = _json(f"{base}/object_info", timeout=min(timeout, 60))
    if status != 200 or not isinstance(object_info, dict):
        raise ServerError(f"GET {base}/object_info answered {status}: is {url} a ComfyUI server?")
    prompt = apply_sets(to_api_prompt(workflow, object_info, server=True), sets, object_info)
    body = {"prompt": prompt, "client_id": client_id or uuid.uuid4().hex}
    if workflow.ui is not None:  # with the --set values, so the PNGs' workflow reproduces them
        body["extra_data"] = {"extra_pnginfo": {"workflow": ui_with_sets(workflow.ui, prompt, sets, object_info)}}
    status, payload = _json(f"{base}/prompt", body, timeout=min(timeout, 60))
    if status != 200:
        raise WorkflowError(prompt_errors(payload))
    prompt_id = payload["prompt_id"]
    if payload.get("node_errors"):  # outputs that failed validation were dropped by the server
        log.warning("server dropped outputs: %s", prompt_errors(payload))
    from ..core import host  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    try:
        while True:
            status, history = _json(f"{base}/history/{prompt_id}", timeout=min(timeout, 60))
            entry = history.get(prompt_id) if isinstance(history, dict) else None
            if entry is not None and (entry.get("status") or {}).get("status_str") == "error":
                raise ServerError("\n".join(_history_errors(entry)))
            if entry is not None and (entry.get("status") or {}).get("completed", True):
                break
            if time.monotonic() > deadline:
                done = cancel_prompt(base, prompt_id)
                raise ServerError(f"prompt {prompt_id} did not finish within {timeout:g} s ({done}): raise "
                                  "--timeout, or check the server's console")
            host.check_interrupt()
            time.sleep(poll_interval)
    except (KeyboardInterrupt,) + host.interrupt_exception_types():
        log.warning("prompt %s %s", prompt_id, cancel_prompt(base, prompt_id))
        raise
    outputs = entry.get("outputs") or {}

    out_dir = Path(output_dir).resolve() if output_dir is not None else host.output_directory()
    files = _download(base, outputs, out_dir, min(timeout, 60))
    return ExecutionResult(outputs, files, time.perf_counter() - start, prompt_id, ())
