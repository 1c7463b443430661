"""The owner's grants through a real ComfyUI's /prompt (issue 10 §2); runs when COMFYUI_DIR is set.

A server with no grants in its environment and an ``llm_assist.yaml`` in its base directory that
allows one extra folder. Through POST /prompt: a caption write outside the allowed folders, a
read of a folder outside them, allow_download and trust_remote_code without the owner's grant
are each a node error, with nothing written, nothing fetched and no code run; a model folder
that is a symlink to another disk loads; the yaml's extra folder is readable.
"""
import json
import os
import shutil
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from comfyui_support import COMFYUI_DIR, running_comfyui, widget_defaults

import llm_assist

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not COMFYUI_DIR, reason="COMFYUI_DIR not set: no real ComfyUI to test against"),
]
REPO = Path(llm_assist.__file__).resolve().parent
EVIL_CODE = "from pathlib import Path\nPath({marker!r}).write_text('ran')\n"


def _call(url: str, data: dict | None = None, timeout: float = 30.0):
    body = json.dumps(data).encode("utf-8") if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{url} answered {exc.code}: {exc.read()[:2000]!r}") from None


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_models):
    root = tmp_path_factory.mktemp("owner")
    base, other_disk = root / "comfy-base", root / "other-disk"
    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / "comfyui-llm-assist").symlink_to(REPO, target_is_directory=True)
    models = base / "models"
    models.mkdir()
    for kind in tiny_models.iterdir():
        if kind.is_dir() and kind.name != "LLM":
            (models / kind.name).symlink_to(kind, target_is_directory=True)
    (models / "LLM").mkdir()
    shutil.copytree(tiny_models / "LLM" / "tiny-blip", other_disk / "tiny-blip")  # models shared from another disk
    (models / "LLM" / "linked-blip").symlink_to(other_disk / "tiny-blip", target_is_directory=True)
    marker = root / "remote_code_ran.marker"
    custom = models / "LLM" / "custom-code"
    shutil.copytree(tiny_models / "LLM" / "tiny-blip", custom)
    (custom / "evil.py").write_text(EVIL_CODE.format(marker=str(marker)))
    config = json.loads((custom / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel",
                          "AutoModelForImageTextToText": "evil.EvilModel"}
    (custom / "config.json").write_text(json.dumps(config))
    from llm_assist.core.sample_images import write_example_images

    write_example_images(base / "input", size=64)
    elsewhere, granted = root / "elsewhere", root / "granted"
    for folder in (elsewhere, granted):
        write_example_images(folder, size=32)
    (base / "llm_assist.yaml").write_text(f"allowed_dirs: [{json.dumps(str(granted))}]\n")
    hf_home = root / "hf-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_ASSIST_") and k != "HF_HUB_OFFLINE"}
    env.update(HF_HOME=str(hf_home))  # not offline: only the owner's (missing) grant may stop a download
    with running_comfyui(base, env=env) as (url, log_path, proc):
        yield {"url": url, "base": base, "elsewhere": elsewhere, "granted": granted, "marker": marker,
               "hf_home": hf_home, "log": log_path}


def _run(server, prompt: dict, timeout: float = 300.0) -> dict:
    """POST /prompt, wait for the history entry; returns {'status': ..., 'errors': [...], 'outputs': ...}."""
    answer = _call(f"{server['url']}/prompt", {"prompt": prompt, "client_id": uuid.uuid4().hex})
    assert not answer.get("node_errors"), answer
    prompt_id = answer["prompt_id"]
    deadline = time.time() + timeout
    while time.time() < deadline:
        entry = _call(f"{server['url']}/history/{prompt_id}").get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None and (
                entry["status"].get("status_str") in ("success", "error")):
            errors = [data for kind, data in entry["status"].get("messages", []) if kind == "execution_error"]
            return {"status": entry["status"]["status_str"], "errors": errors, "outputs": entry.get("outputs", {})}
        time.sleep(0.5)
    pytest.fail(f"prompt {prompt_id} did not finish: {server['log'].read_text()[-2000:]}")


def _node_error(result: dict, node_type: str) -> str:
    assert result["status"] == "error", result
    (error,) = result["errors"]
    assert error["node_type"] == node_type, error
    return error["exception_message"]


def _captioner(model: str, **widgets) -> dict:
    return {"class_type": "LLMAssistLoadCaptioner",
            "inputs": {**widget_defaults("LLMAssistLoadCaptioner"), "model": model, "device": "cpu", "dtype": "fp32",
                       "keep_loaded": False, **widgets}}


def _caption_prompt(model: str, **widgets) -> dict:
    caption = {**widget_defaults("LLMAssistCaptionImage"), "captioner": ["2", 0], "image": ["1", 0], "max_new_tokens": 4}
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": _captioner(model, **widgets),
        "3": {"class_type": "LLMAssistCaptionImage", "inputs": caption},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
    }


def _folder_prompt(path: str) -> dict:
    load = {**widget_defaults("LLMAssistLoadImageFolder"), "path": path, "pattern": "*.png"}
    return {"1": {"class_type": "LLMAssistLoadImageFolder", "inputs": load},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 2]}}}


def _save_prompt(image_path: str, output_folder: str = "") -> dict:
    save = {**widget_defaults("LLMAssistSaveCaptions"), "captions": ["1", 0], "image_paths": ["2", 0],
            "mode": "overwrite", "output_folder": output_folder}
    return {"1": {"class_type": "PrimitiveString", "inputs": {"value": "pwned"}},
            "2": {"class_type": "PrimitiveString", "inputs": {"value": image_path}},
            "3": {"class_type": "LLMAssistSaveCaptions", "inputs": save}}


def _txt(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.txt"))


def test_caption_writes_outside_the_allowed_folders_are_node_errors(server):
    elsewhere = server["elsewhere"]
    message = _node_error(_run(server, _save_prompt(str(elsewhere / "example.png"))), "LLMAssistSaveCaptions")
    assert "outside the folders this server lets a workflow write" in message and "LLM_ASSIST_ALLOWED_DIRS" in message
    message = _node_error(_run(server, _save_prompt(str(server["base"] / "input" / "example.png"),
                                                   output_folder=str(elsewhere / "caps"))), "LLMAssistSaveCaptions")
    assert "output_folder" in message
    message = _node_error(_run(server, _save_prompt(str(server["base"] / "custom_nodes" / "comfyui-llm-assist" / "x.png"))),
                          "LLMAssistSaveCaptions")
    assert "custom_nodes" in message
    assert _txt(elsewhere) == [] and not (REPO / "x.txt").exists()
    # inside the output folder it writes
    ok = _run(server, _save_prompt(str(server["base"] / "input" / "example.png"), output_folder="caps"))
    assert ok["status"] == "success", ok
    assert (server["base"] / "output" / "caps" / "example.txt").read_text() == "pwned"


def test_reading_a_folder_outside_is_a_node_error_and_the_owners_folder_reads(server):
    message = _node_error(_run(server, _folder_prompt(str(server["elsewhere"] / "dataset"))), "LLMAssistLoadImageFolder")
    assert "outside the folders this server lets a workflow read" in message
    message = _node_error(_run(server, _folder_prompt("../../elsewhere/dataset")), "LLMAssistLoadImageFolder")
    assert "outside" in message
    for path in ("dataset", str(server["granted"] / "dataset")):  # input folder; llm_assist.yaml's allowed_dirs
        ok = _run(server, _folder_prompt(path))
        assert ok["status"] == "success", ok
        assert ok["outputs"]["2"]["text"] == ["2"]


def test_allow_download_without_the_grant_is_refused_and_nothing_fetched(server):
    result = _run(server, _caption_prompt("linked-blip", allow_download=True,  # a typed repo id wins over the combo
                                          repo_id="Salesforce/blip-image-captioning-base"))
    message = _node_error(result, "LLMAssistLoadCaptioner")
    assert "server owner" in message and "LLM_ASSIST_ALLOW_DOWNLOAD=1" in message
    assert not any(server["hf_home"].rglob("*")), "something was fetched into HF_HOME"


@pytest.mark.parametrize("trust", [True, False])
def test_remote_code_without_the_grant_never_runs(server, trust):
    message = _node_error(_run(server, _caption_prompt("custom-code", trust_remote_code=trust)), "LLMAssistLoadCaptioner")
    assert ("LLM_ASSIST_TRUST_REMOTE_CODE=1" in message) and (("server owner" in message) or not trust), message
    assert not server["marker"].exists(), "code from the model folder ran"


def test_a_symlinked_model_folder_loads(server):
    info = _call(f"{server['url']}/object_info/LLMAssistLoadCaptioner")
    listed = info["LLMAssistLoadCaptioner"]["input"]["required"]["model"][0]
    assert "linked-blip" in listed and "custom-code" in listed
    result = _run(server, _caption_prompt("linked-blip"))
    assert result["status"] == "success", result
    (caption,) = result["outputs"]["4"]["text"]
    assert isinstance(caption, str)
