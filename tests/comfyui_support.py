"""Starting a real ComfyUI for the integration tests (COMFYUI_DIR / COMFYUI_PYTHON), on 127.0.0.1."""
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 30.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
        return json.loads(response.read().decode("utf-8"))


@contextlib.contextmanager
def running_comfyui(base: Path, *extra_args: str, env: dict | None = None, startup_s: float = 180):
    """ComfyUI with ``--base-directory base`` (custom_nodes and models prepared by the caller) on a free
    loopback port; yields ``(url, log_path, proc)`` and stops it afterwards."""
    port = free_port()
    log_path = base / "comfyui.log"
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--base-directory", str(base),
             "--disable-auto-launch", "--database-url", "sqlite:///:memory:", *extra_args],
            cwd=COMFYUI_DIR, stdout=log, stderr=subprocess.STDOUT,
            env=env if env is not None else dict(os.environ, HF_HUB_OFFLINE="1"),
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + startup_s
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"ComfyUI exited: {log_path.read_text()[-3000:]}")
            try:
                get_json(f"{url}/system_stats", timeout=2)
                break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail(f"ComfyUI did not start: {log_path.read_text()[-3000:]}")
        yield url, log_path, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def widget_defaults(node_id: str) -> dict:
    """Every widget's default (a combo's default or first option) of one of the pack's nodes, as the
    editor would send it."""
    from llm_assist import NODE_CLASS_MAPPINGS

    spec = NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()
    out = {}
    for section in ("required", "optional"):
        for name, value in (spec.get(section) or {}).items():
            options = value[1] if len(value) > 1 and isinstance(value[1], dict) else {}
            if isinstance(value[0], list):
                out[name] = options.get("default", value[0][0])
            elif "default" in options:
                out[name] = options["default"]
    return out
