"""Save Captions in a real ComfyUI with its output cache on (issue 15 §3): runs when COMFYUI_DIR is set.

The shared integration fixture starts ComfyUI with --cache-none (every node re-runs), which would
hide the bug this checks: ComfyUI serving Save Captions' "1 written" from its cache after the
caption file was deleted. So this module starts its own ComfyUI with the default cache.
"""
import json
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from PIL import Image
from comfyui_support import COMFYUI_DIR, get_json, running_comfyui
from test_comfyui_integration import REPO

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not COMFYUI_DIR, reason="COMFYUI_DIR not set: no real ComfyUI to test against"),
]


@pytest.fixture(scope="module")
def cached_comfyui(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy-cached")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "comfyui-llm-assist").symlink_to(REPO, target_is_directory=True)
    (base / "input").mkdir()
    with running_comfyui(base) as (url, log_path, proc):
        yield url, base, log_path


def _queue(url: str, prompt: dict, log_path: Path) -> dict:
    body = json.dumps({"prompt": prompt, "client_id": uuid.uuid4().hex}).encode()
    request = urllib.request.Request(f"{url}/prompt", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only
            prompt_id = json.loads(response.read())["prompt_id"]
    except urllib.error.HTTPError as exc:
        pytest.fail(f"POST /prompt answered {exc.code}: {exc.read()[:2000]!r}")
    deadline = time.time() + 120
    while time.time() < deadline:
        entry = get_json(f"{url}/history/{prompt_id}").get(prompt_id)
        if entry and entry.get("status", {}).get("completed"):
            return entry
        if entry and entry.get("status", {}).get("status_str") == "error":
            pytest.fail(f"prompt failed: {entry['status']} {log_path.read_text()[-2000:]}")
        time.sleep(0.2)
    pytest.fail(f"prompt did not finish: {log_path.read_text()[-2000:]}")


def _cached_nodes(entry: dict) -> set:
    for kind, data in entry["status"].get("messages", []):
        if kind == "execution_cached":
            return set(data.get("nodes") or [])
    return set()


@pytest.mark.parametrize("mode", ["skip existing", "append"])
def test_requeue_after_deleting_a_caption_writes_it_again(cached_comfyui, mode):
    url, base, log_path = cached_comfyui
    folder = base / "input" / f"caps-{mode.replace(' ', '-')}"
    folder.mkdir()
    Image.new("RGB", (32, 32), (200, 40, 40)).save(folder / "one.png")
    caption = folder / "one.txt"
    prompt = {
        "1": {"class_type": "LLMAssistLoadImageFolder",
              "inputs": {"path": str(folder), "pattern": "*", "sort": "natural", "start": 0, "limit": 0,
                         "recursive": False}},
        "2": {"class_type": "LLMAssistSaveCaptions",
              "inputs": {"captions": "a red square", "image_paths": ["1", 1], "mode": mode,
                         "output_folder": "", "prefix": "", "suffix": ""}},
    }
    first = _queue(url, prompt, log_path)
    assert caption.read_text() == "a red square", first["status"]
    second = _queue(url, prompt, log_path)
    assert "2" in _cached_nodes(second)  # files as the node left them: served from the cache
    assert caption.read_text() == "a red square"  # append mode did not append twice
    caption.unlink()
    third = _queue(url, prompt, log_path)
    assert "2" not in _cached_nodes(third) and caption.read_text() == "a red square"
    fourth = _queue(url, prompt, log_path)
    assert "2" in _cached_nodes(fourth) and caption.read_text() == "a red square"
    assert "1 written" in json.dumps(third["outputs"]["2"])


def test_server_png_workflow_reproduces_the_set_values(cached_comfyui, tmp_path):
    """run --server --set: the PNG ComfyUI saves carries a workflow that converts to the prompt that ran."""
    from llm_assist.runner import to_api_prompt
    from llm_assist.runner.server import run_on_server

    url, base, _ = cached_comfyui
    Image.new("RGB", (64, 48), (10, 200, 30)).save(base / "input" / "prov.png")

    def node(id_, type_, widgets, inputs=(), outputs=()):
        return {"id": id_, "type": type_, "mode": 0, "widgets_values": widgets, "inputs": list(inputs),
                "outputs": list(outputs)}

    ui = {"version": 0.4, "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]], "nodes": [
        node(1, "LoadImage", ["prov.png", "image"], outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [1]}]),
        node(2, "ImageScaleBy", ["nearest-exact", 1.0], inputs=[{"name": "image", "type": "IMAGE", "link": 1}],
             outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [2]}]),
        node(3, "SaveImage", ["prov"], inputs=[{"name": "images", "type": "IMAGE", "link": 2}])]}
    result = run_on_server(ui, url, sets=["2.scale_by=0.5"], output_dir=tmp_path, poll_interval=0.1)
    with Image.open(result.files[0]) as img:
        assert img.size == (32, 24)
        prompt, workflow = json.loads(img.text["prompt"]), json.loads(img.text["workflow"])
    assert workflow["nodes"][1]["widgets_values"] == ["nearest-exact", 0.5]
    object_info = get_json(f"{url}/object_info")
    restored = to_api_prompt(workflow, object_info, server=True)
    assert {k: v["inputs"] for k, v in restored.items()} == {k: v["inputs"] for k, v in prompt.items()}


def _slow_prompt(seed: int) -> dict:
    """Three 63-px blurs of a 1024-px batch on CPU: seconds per node; ComfyUI checks for an
    interrupt between nodes. ``seed`` (the colour) keeps it out of the output cache."""
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 2,
                                                           "color": seed}}}
    for i in (2, 3, 4):
        prompt[str(i)] = {"class_type": "ImageBlur", "inputs": {"image": [str(i - 1), 0], "blur_radius": 31,
                                                                 "sigma": 10.0}}
    prompt["5"] = {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}}
    return prompt


def _wait_idle(url: str, seconds: float = 300) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        queue = get_json(f"{url}/queue")
        if not queue["queue_running"] and not queue["queue_pending"]:
            return
        time.sleep(0.5)
    pytest.fail(f"the server is still busy: {queue}")


def test_server_timeout_takes_the_prompt_off_a_real_server(cached_comfyui, tmp_path):
    from llm_assist.runner.server import ServerError, run_on_server

    url, _, _ = cached_comfyui
    _wait_idle(url)
    seed = int(time.time()) % 0xFFFFFF
    # running: interrupted (only this prompt) when --timeout passes
    with pytest.raises(ServerError, match="interrupted on the server"):
        run_on_server(_slow_prompt(seed), url, output_dir=tmp_path, timeout=1.5, poll_interval=0.2)
    _wait_idle(url)
    history = get_json(f"{url}/history")
    entry = next(e for e in history.values()  # the server also ran this module's other prompts
                 if e["prompt"][2].get("1", {}).get("inputs", {}).get("color") == seed)
    kinds = [kind for kind, _ in entry["status"]["messages"]]
    assert "execution_interrupted" in kinds and not entry["outputs"], kinds
    # waiting behind another prompt: dequeued, never runs
    blocker = json.dumps({"prompt": _slow_prompt(seed + 1), "client_id": uuid.uuid4().hex}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{url}/prompt", data=blocker,  # noqa: S310 - loopback
                                                  headers={"Content-Type": "application/json"}), timeout=30).read()
    with pytest.raises(ServerError, match="removed from the server's queue"):
        run_on_server(_slow_prompt(seed + 2), url, output_dir=tmp_path, timeout=1.0, poll_interval=0.2)
    queue = get_json(f"{url}/queue")
    assert all(item[2].get("1", {}).get("inputs", {}).get("color") != seed + 2
               for item in queue["queue_pending"] + queue["queue_running"])
    urllib.request.urlopen(urllib.request.Request(f"{url}/interrupt", data=b"{}", method="POST",  # noqa: S310
                                                  headers={"Content-Type": "application/json"}), timeout=30).read()
    _wait_idle(url)
    assert not any(e["prompt"][2].get("1", {}).get("inputs", {}).get("color") == seed + 2
                   for e in get_json(f"{url}/history").values())
