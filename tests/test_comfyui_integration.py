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


def _widget_defaults(node_id: str) -> dict:
    spec = NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()
    out = {}
    for section in ("required", "optional"):
        for name, value in (spec.get(section) or {}).items():
            options = value[1] if len(value) > 1 else {}
            if isinstance(value[0], list):
                out[name] = options.get("default", value[0][0])
            elif "default" in options:
                out[name] = options["default"]
    return out


def model_server_prompt(base_url: str) -> dict:
    """Connect Model Server -> Caption Image and Expand Prompt -> Preview Any (API format)."""
    connect = {**_widget_defaults("LLMAssistConnectModelServer"), "base_url": base_url, "model": "", "max_side": 256}
    caption = {**_widget_defaults("LLMAssistCaptionImage"), "captioner": ["2", 0], "image": ["1", 0], "max_new_tokens": 8}
    expand = {**_widget_defaults("LLMAssistExpandPrompt"), "language_model": ["2", 1], "mode": "generate",
              "text": "a red fox in the snow", "max_new_tokens": 12}
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "LLMAssistConnectModelServer", "inputs": connect},
        "3": {"class_type": "LLMAssistCaptionImage", "inputs": caption},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
        "5": {"class_type": "LLMAssistExpandPrompt", "inputs": expand},
        "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 0]}},
    }


def test_connect_model_server_workflow_runs_in_comfyui_and_headless(comfyui, serve, tmp_path):
    """Connect Model Server -> Caption Image / Expand Prompt against transformers serve on 127.0.0.1."""
    from llm_assist import runner
    from llm_assist.core import host
    from llm_assist.core.sample_images import write_example_images
    from llm_assist.runner.server import run_on_server

    url, _ = comfyui
    path = tmp_path / "model_server_api.json"
    path.write_text(json.dumps(model_server_prompt(serve.url)))
    in_comfy = run_on_server(path, url, output_dir=tmp_path / "out")
    inputs = tmp_path / "input"
    write_example_images(inputs, size=64)
    previous = host.set_input_directory(inputs)
    try:
        headless = runner.run_workflow(path, output_dir=tmp_path / "out-headless", cache=False)
    finally:
        host.set_input_directory(previous)
    for result in (in_comfy, headless):
        caption, expanded = result.outputs["4"]["text"], result.outputs["6"]["text"]
        assert len(caption) == 1 and isinstance(caption[0], str)
        assert len(expanded) == 1 and expanded[0].strip()
    # temperature 0 on the same server: ComfyUI and the headless runner get the same text
    assert in_comfy.outputs["6"]["text"] == headless.outputs["6"]["text"]
