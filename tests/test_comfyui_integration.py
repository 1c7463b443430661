"""Integration with a real ComfyUI checkout: runs when COMFYUI_DIR is set, skipped otherwise.

COMFYUI_DIR points at a ComfyUI source folder (main.py); COMFYUI_PYTHON at the Python that
runs it (default: this one). The pack is linked into a temporary base directory's
custom_nodes; the server listens on 127.0.0.1 only.
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import llm_assist
from llm_assist import NODE_CLASS_MAPPINGS

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not COMFYUI_DIR, reason="COMFYUI_DIR not set: no real ComfyUI to test against"),
]
REPO = Path(llm_assist.__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 30.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
        return json.loads(response.read().decode("utf-8"))


@pytest.fixture(scope="module")
def comfyui(tmp_path_factory, tiny_models):
    base = tmp_path_factory.mktemp("comfy-base")
    (base / "custom_nodes").mkdir()
    # any folder name must work: ComfyUI imports by path
    (base / "custom_nodes" / "comfyui-llm-assist").symlink_to(REPO, target_is_directory=True)
    (base / "models").symlink_to(tiny_models, target_is_directory=True)
    from llm_assist.core.sample_images import write_example_images

    write_example_images(base / "input", size=64)
    port = _free_port()
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    log_path = base / "comfyui.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--base-directory", str(base),
             "--disable-auto-launch", "--database-url", "sqlite:///:memory:", "--cache-none"],
            cwd=COMFYUI_DIR, stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"ComfyUI exited: {log_path.read_text()[-3000:]}")
            try:
                _get(f"{url}/system_stats", timeout=2)
                break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail(f"ComfyUI did not start: {log_path.read_text()[-3000:]}")
        yield url, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_pack_imports_and_every_node_is_listed(comfyui):
    url, log_path = comfyui
    log_lines = log_path.read_text().splitlines()
    # ComfyUI logs "<seconds> seconds: <path>" per custom node, "(IMPORT FAILED)" when it broke;
    # its own optional nodes (e.g. audio without torchaudio) may fail: only our line matters.
    ours = [line for line in log_lines if "custom_nodes/comfyui-llm-assist" in line]
    assert ours and not any("IMPORT FAILED" in line for line in ours), ours
    info = _get(f"{url}/object_info")
    missing = sorted(set(NODE_CLASS_MAPPINGS) - set(info))
    assert not missing, missing
    for node_id in NODE_CLASS_MAPPINGS:
        spec = info[node_id]
        for section in ("required", "optional"):
            for name, value in spec["input"].get(section, {}).items():
                assert len(value) > 1 and value[1].get("tooltip"), f"{node_id}.{name} lost its tooltip"
        assert spec["description"]


def test_example_workflows_listed_as_templates(comfyui):
    url, _ = comfyui
    templates = _get(f"{url}/api/workflow_templates")
    names = set(next(iter(templates.values()))) if templates else set()
    expected = {p.stem for p in (REPO / "example_workflows").glob("*.json")}
    assert expected and expected <= names, (expected, templates)


def test_runs_a_workflow_through_post_prompt(comfyui, tmp_path):
    url, _ = comfyui
    from llm_assist.runner.cli import main as run_main  # the runner's --server mode

    workflow = REPO / "example_workflows" / "dataset_captioning.json"
    if not workflow.is_file():
        workflow = next((REPO / "example_workflows").glob("*.json"))
    out = tmp_path / "out"
    code = run_main(["run", str(workflow), "--server", url, "--output", str(out)] + _tiny_sets(workflow))
    assert code == 0


def _tiny_sets(workflow: Path) -> list[str]:
    from llm_assist.runner.tiny_sets import tiny_model_sets

    return [arg for item in tiny_model_sets(workflow) for arg in ("--set", item)]
