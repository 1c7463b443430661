"""Integration with a real ComfyUI checkout: runs when COMFYUI_DIR is set, skipped otherwise.

COMFYUI_DIR points at a ComfyUI source folder (main.py); COMFYUI_PYTHON at the Python that
runs it (default: this one). The pack is linked into a temporary base directory's
custom_nodes; the server listens on 127.0.0.1 only.
"""
import contextlib
import json
import time
import urllib.request
from pathlib import Path

import pytest
from comfyui_support import COMFYUI_DIR, get_json, running_comfyui, widget_defaults

import llm_assist
from llm_assist import NODE_CLASS_MAPPINGS

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not COMFYUI_DIR, reason="COMFYUI_DIR not set: no real ComfyUI to test against"),
]
REPO = Path(llm_assist.__file__).resolve().parent




@pytest.fixture(scope="module")
def comfyui(tmp_path_factory, tiny_models):
    base = tmp_path_factory.mktemp("comfy-base")
    (base / "custom_nodes").mkdir()
    # any folder name must work: ComfyUI imports by path
    (base / "custom_nodes" / "comfyui-llm-assist").symlink_to(REPO, target_is_directory=True)
    (base / "models").symlink_to(tiny_models, target_is_directory=True)
    from llm_assist.core.sample_images import write_example_images

    write_example_images(base / "input", size=64)
    with running_comfyui(base, "--cache-none") as (url, log_path, proc):
        yield url, log_path


def test_pack_imports_and_every_node_is_listed(comfyui):
    url, log_path = comfyui
    log_lines = log_path.read_text().splitlines()
    # ComfyUI logs "<seconds> seconds: <path>" per custom node, "(IMPORT FAILED)" when it broke;
    # its own optional nodes (e.g. audio without torchaudio) may fail: only our line matters.
    ours = [line for line in log_lines if "custom_nodes/comfyui-llm-assist" in line]
    assert ours and not any("IMPORT FAILED" in line for line in ours), ours
    info = get_json(f"{url}/object_info")
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
    templates = get_json(f"{url}/api/workflow_templates")
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


# ------------------------------------------------------------------ memory manager and previews (issue 10)
PROBE = """
import comfy.model_management as mm
from aiohttp import web
from server import PromptServer


@PromptServer.instance.routes.get("/llma_probe/loaded")
async def loaded(request):
    out = []
    for entry in list(mm.current_loaded_models):
        patcher = entry.model
        if patcher is not None:
            out.append({"class": type(patcher.model).__name__, "size": int(entry.model_memory()), "device": str(entry.device)})
    return web.json_response(out)


NODE_CLASS_MAPPINGS = {}
"""


def _build_big_captioner(folder: Path) -> int:
    """A ViT-GPT2 captioner with a 768-wide, 4-layer decoder (about 150 MB fp32): big enough for
    RSS to show it, fast to caption a few tokens. Returns its parameter + buffer bytes."""
    import torch
    from transformers import (GenerationConfig, GPT2Config, ViTConfig, ViTImageProcessor, VisionEncoderDecoderConfig,
                              VisionEncoderDecoderModel)

    from llm_assist.core.tiny_models import gpt2_tokenizer

    tok = gpt2_tokenizer()
    eos = tok.eos_token_id
    decoder = GPT2Config(vocab_size=len(tok), n_embd=768, n_layer=4, n_head=8, n_positions=64, add_cross_attention=True,
                         is_decoder=True, bos_token_id=eos, eos_token_id=eos)
    encoder = ViTConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8)
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id = config.pad_token_id = config.eos_token_id = eos
    torch.manual_seed(0)
    model = VisionEncoderDecoderModel(config=config).eval()
    model.generation_config = GenerationConfig(decoder_start_token_id=eos, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return sum(t.numel() * t.element_size() for t in tensors.values())


@contextlib.contextmanager
def _server(base: Path, *extra: str):
    with running_comfyui(base, *extra) as (url, log_path, proc):
        yield url, log_path, proc


@pytest.fixture(scope="module")
def comfyui_live(tmp_path_factory, tiny_models):
    """A ComfyUI started with --preview-method auto (default caching), the tiny models, a ~150 MB
    captioner and a probe route that lists comfy.model_management.current_loaded_models."""
    base = tmp_path_factory.mktemp("comfy-live")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "comfyui-llm-assist").symlink_to(REPO, target_is_directory=True)
    (base / "custom_nodes" / "llma_probe").mkdir()
    (base / "custom_nodes" / "llma_probe" / "__init__.py").write_text(PROBE)
    models = base / "models"
    models.mkdir()
    for kind in Path(tiny_models).iterdir():
        if kind.is_dir() and kind.name != "LLM":
            (models / kind.name).symlink_to(kind, target_is_directory=True)
    (models / "LLM").mkdir()
    for model in (Path(tiny_models) / "LLM").iterdir():
        (models / "LLM" / model.name).symlink_to(model, target_is_directory=True)
    big_bytes = _build_big_captioner(models / "LLM" / "big-vit-gpt2")
    from llm_assist.core.sample_images import write_example_images

    write_example_images(base / "input", size=64)
    with _server(base, "--preview-method", "auto") as (url, log_path, proc):
        yield url, log_path, proc, big_bytes


def _post(url: str, payload: dict, timeout: float = 30.0):
    request = urllib.request.Request(url, data=json.dumps(payload).encode("utf-8"), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
        body = response.read().decode("utf-8")
    return json.loads(body) if body.strip() else {}


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _memory_prompt(seed: int = 1, steps: int = 2) -> dict:
    loader = {**widget_defaults("LLMAssistLoadCaptioner"), "model": "big-vit-gpt2", "device": "cpu", "dtype": "fp32"}
    caption = {**widget_defaults("LLMAssistCaptionImage"), "captioner": ["2", 0], "image": ["1", 0], "max_new_tokens": 4, "seed": seed}
    pipeline = {**widget_defaults("LLMAssistLoadPipeline"), "model": "tiny-sd15", "device": "cpu", "dtype": "fp32"}
    generate = {**widget_defaults("LLMAssistGenerate"), "pipeline": ["5", 0], "seed": seed, "steps": steps, "width": 64,
                "height": 64, "positive": "a cat"}
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "LLMAssistLoadCaptioner", "inputs": loader},
        "3": {"class_type": "LLMAssistCaptionImage", "inputs": caption},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
        "5": {"class_type": "LLMAssistLoadPipeline", "inputs": pipeline},
        "6": {"class_type": "LLMAssistGenerate", "inputs": generate},
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
    }


def _run_ws(url: str, prompt: dict, timeout: float = 300.0) -> dict:
    """Submit ``prompt`` with a websocket client attached; returns what the client received."""
    import uuid

    websocket = pytest.importorskip("websocket")
    client_id = uuid.uuid4().hex
    ws = websocket.create_connection(f"ws://{url.split('://', 1)[1]}/ws?clientId={client_id}", timeout=timeout)
    try:
        prompt_id = _post(f"{url}/prompt", {"prompt": prompt, "client_id": client_id})["prompt_id"]
        got = {"progress": {}, "previews": 0, "texts": [], "error": None}
        deadline = time.time() + timeout
        while time.time() < deadline:
            message = ws.recv()
            if isinstance(message, bytes):
                event = int.from_bytes(message[:4], "big")
                if event == 1:  # PREVIEW_IMAGE
                    got["previews"] += 1
                elif event == 3:  # TEXT: node id length, node id, text
                    n = int.from_bytes(message[4:8], "big")
                    got["texts"].append((message[8:8 + n].decode(), message[8 + n:].decode("utf-8", "replace")))
                continue
            data = json.loads(message)
            kind, body = data.get("type"), data.get("data", {})
            if body.get("prompt_id") not in (None, prompt_id):
                continue
            if kind == "progress":
                got["progress"].setdefault(str(body["node"]), []).append(body["value"])
            elif kind == "execution_error":
                got["error"] = body
                break
            elif kind == "executing" and body.get("node") is None and body.get("prompt_id") == prompt_id:
                break
        else:
            pytest.fail("the prompt did not finish over the websocket")
        return got
    finally:
        ws.close()


def _ours(url: str) -> list[dict]:
    return [m for m in get_json(f"{url}/llma_probe/loaded") if m["class"] in ("Captioner", "StableDiffusionPipeline")]


def _free(url: str, flags: dict) -> None:
    """POST /free once the worker idles. ComfyUI 0.3.64 reads the flags right after a prompt and
    then waits on its queue; a flag set in between is only seen at the next wake-up (up to 1000 s
    later), so wait for the queue to be empty, post, and post again if nothing happened."""
    time.sleep(1.5)
    for _attempt in range(3):
        _post(f"{url}/free", flags)
        deadline = time.time() + 10
        while _ours(url) and time.time() < deadline:
            time.sleep(0.5)
        if not _ours(url):
            return


def test_our_models_are_comfyuis_loaded_models_and_free_releases_them(comfyui_live):
    url, log_path, proc, big_bytes = comfyui_live
    got = _run_ws(url, _memory_prompt(seed=1))
    assert got["error"] is None, got["error"]
    loaded = {m["class"]: m["size"] for m in _ours(url)}
    assert set(loaded) == {"Captioner", "StableDiffusionPipeline"}, get_json(f"{url}/llma_probe/loaded")
    assert loaded["Captioner"] == big_bytes and loaded["StableDiffusionPipeline"] > 1_000_000
    ours = sum(loaded.values())

    before = _rss(proc.pid)
    _free(url, {"unload_models": True, "free_memory": True})
    assert not _ours(url), "POST /free left our models registered"
    time.sleep(2.0)  # the worker's gc after /free
    after = _rss(proc.pid)
    print(f"RSS before /free {before / 1e6:.1f} MB, after {after / 1e6:.1f} MB, "
          f"fell {(before - after) / 1e6:.1f} MB; our models {ours / 1e6:.1f} MB")
    assert before - after >= ours, (before, after, ours)

    again = _run_ws(url, _memory_prompt(seed=1))  # the same workflow runs again: reloaded transparently
    assert again["error"] is None, again["error"]
    assert {m["class"] for m in _ours(url)} == {"Captioner", "StableDiffusionPipeline"}


def test_unload_models_keeps_handles_and_reloads_them(comfyui_live):
    """'Unload Models' only (ComfyUI keeps the loader nodes' cached outputs): the next run with a
    new seed re-runs Caption/Generate on the same handles, whose weights come back from disk."""
    url, _log, _proc, _big = comfyui_live
    assert _run_ws(url, _memory_prompt(seed=2))["error"] is None
    _free(url, {"unload_models": True})
    assert not _ours(url)
    got = _run_ws(url, _memory_prompt(seed=3))
    assert got["error"] is None, got["error"]
    assert {m["class"] for m in _ours(url)} == {"Captioner", "StableDiffusionPipeline"}


def test_preview_auto_sends_a_preview_per_step_and_caption_text(comfyui_live):
    url, _log, _proc, _big = comfyui_live
    steps = 3
    got = _run_ws(url, _memory_prompt(seed=4, steps=steps))
    assert got["error"] is None, got["error"]
    assert got["progress"].get("6") == list(range(1, steps + 1)), got["progress"]
    assert got["previews"] == steps  # latent2rgb (comfy.latent_formats.SD15), no tiny VAE loaded
    assert any(node == "3" for node, _text in got["texts"]), got["texts"]  # Caption Image's text so far


def test_preview_none_sends_progress_but_no_previews(comfyui):
    url, _ = comfyui
    steps = 3
    got = _run_ws(url, _memory_prompt(seed=5, steps=steps) | {
        "2": {"class_type": "LLMAssistLoadCaptioner",
              "inputs": {**widget_defaults("LLMAssistLoadCaptioner"), "model": "tiny-vit-gpt2", "device": "cpu", "dtype": "fp32"}}})
    assert got["error"] is None, got["error"]
    assert got["progress"].get("6") == list(range(1, steps + 1)), got["progress"]
    assert got["previews"] == 0


def model_server_prompt(base_url: str) -> dict:
    """Connect Model Server -> Caption Image and Expand Prompt -> Preview Any (API format)."""
    connect = {**widget_defaults("LLMAssistConnectModelServer"), "base_url": base_url, "model": "", "max_side": 256}
    caption = {**widget_defaults("LLMAssistCaptionImage"), "captioner": ["2", 0], "image": ["1", 0], "max_new_tokens": 8}
    expand = {**widget_defaults("LLMAssistExpandPrompt"), "language_model": ["2", 1], "mode": "generate",
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
    # temperature 0 on the same server, the same example image: ComfyUI and the headless runner get the same texts
    assert in_comfy.outputs["6"]["text"] == headless.outputs["6"]["text"]
    assert in_comfy.outputs["4"]["text"] == headless.outputs["4"]["text"]


def _queue(url: str, prompt: dict) -> str:
    body = json.dumps({"prompt": prompt, "client_id": "llma-test"}).encode()
    request = urllib.request.Request(f"{url}/prompt", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())["prompt_id"]


def _wait_history(url: str, prompt_id: str, timeout: float = 300.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        entry = get_json(f"{url}/history/{prompt_id}").get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None and (
                entry["status"].get("completed") or entry["status"].get("status_str") == "error"):
            return entry
        time.sleep(0.3)
    pytest.fail(f"prompt {prompt_id} did not finish within {timeout:.0f} s")


def test_cancel_closes_the_server_stream_in_comfyui_and_the_next_run_works(comfyui, serve):
    """ComfyUI's Cancel (/interrupt) during a long streamed answer: the run ends interrupted, the next one works."""
    url, _ = comfyui
    long_run = model_server_prompt(serve.url)
    del long_run["1"], long_run["3"], long_run["4"]  # Expand Prompt only
    long_run["5"]["inputs"]["max_new_tokens"] = 1000  # many seconds of tokens from the tiny model
    prompt_id = _queue(url, long_run)
    deadline = time.time() + 60
    while time.time() < deadline and not get_json(f"{url}/queue").get("queue_running"):
        time.sleep(0.1)
    time.sleep(0.3)  # connected and streaming (an idle machine writes the 1000 tokens in about 2 s)
    urllib.request.urlopen(urllib.request.Request(f"{url}/interrupt", data=b"{}", method="POST"), timeout=30)  # noqa: S310
    entry = _wait_history(url, prompt_id)
    kinds = [message[0] for message in entry["status"].get("messages", [])]
    assert "execution_interrupted" in kinds and "execution_success" not in kinds, kinds
    short = model_server_prompt(serve.url)
    short["5"]["inputs"]["max_new_tokens"] = 4
    done = _wait_history(url, _queue(url, short))
    assert done["status"]["status_str"] == "success" and done["outputs"]["6"]["text"][0].strip()


def test_concurrent_image_requests_report_progress_in_comfyui(comfyui, serve):
    """A batch of 3 images, 2 requests at a time: the worker threads go through ComfyUI's progress hook."""
    url, _ = comfyui
    prompt = model_server_prompt(serve.url)
    del prompt["5"], prompt["6"]
    prompt["7"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 3}}
    prompt["2"]["inputs"]["concurrency"] = 2
    prompt["3"]["inputs"]["image"] = ["7", 0]
    done = _wait_history(url, _queue(url, prompt))
    assert done["status"]["status_str"] == "success", done["status"]
    assert len(done["outputs"]["4"]["text"]) == 3


def test_a_workflow_cannot_make_comfyui_call_a_host_the_owner_did_not_allow(comfyui):
    """base_url off this machine without LLM_ASSIST_SERVER_HOSTS: refused at validation, nothing runs."""
    import urllib.error

    url, _ = comfyui
    prompt = model_server_prompt("http://10.1.2.3:8000/v1")
    with pytest.raises(urllib.error.HTTPError) as info:
        _queue(url, prompt)
    body = json.loads(info.value.read())
    assert info.value.code == 400 and "LLM_ASSIST_SERVER_HOSTS" in json.dumps(body["node_errors"]["2"]), body


def test_model_server_example_runs_in_comfyui_and_headless(comfyui, serve, tmp_path):
    """example_workflows/model_server.json (UI format, only base_url switched to transformers serve) in a
    real ComfyUI and in the headless runner: every preview has text, and at temperature 0 both get the same
    server texts. Build Prompt's and Expand Prompt's token budgets are counted with ComfyUI's bundled CLIP
    tokenizer inside ComfyUI and estimated headless, so one may keep fewer of the tiny model's made-up words."""
    import re

    from llm_assist import runner
    from llm_assist.core.sample_images import write_example_images
    from llm_assist.runner.server import run_on_server
    from llm_assist.runner.tiny_sets import tiny_model_sets

    url, _ = comfyui
    path = REPO / "example_workflows" / "model_server.json"
    sets = tiny_model_sets(path, server_url=serve.url)
    in_comfy = run_on_server(path, url, sets=sets, output_dir=tmp_path / "out")
    write_example_images(tmp_path / "input", size=64)
    headless = runner.run_workflow(path, sets=sets, output_dir=tmp_path / "out-headless", input_dir=tmp_path / "input",
                                   cache=False)
    ui = json.loads(path.read_text(encoding="utf-8"))
    previews = [str(n["id"]) for n in ui["nodes"] if n["type"] == "PreviewAny"]
    assert len(previews) == 4
    for node_id in previews:
        text = in_comfy.outputs[node_id]["text"]
        assert len(text) == 1 and text[0].strip(), (node_id, text)
    title = {n.get("title"): str(n["id"]) for n in ui["nodes"]}
    for name in ("Server models", "Caption"):
        assert headless.outputs[title[name]]["text"] == in_comfy.outputs[title[name]]["text"], name
    # the same answer, one maybe cut shorter (at a comma or word: compare the words, punctuation aside)
    words = sorted((re.findall(r"\w+", r.outputs[title["LLM-expanded prompt"]]["text"][0]) for r in (in_comfy, headless)),
                   key=len)
    assert words[0] and words[0] == words[1][:len(words[0])], words
    # the same keywords, one maybe fewer (weights aside: a term at weight 1 has no brackets)
    terms = sorted((re.findall(r"[^\W\d]+", r.outputs[title["Prompt"]]["text"][0]) for r in (in_comfy, headless)),
                   key=len)
    assert terms[0] and set(terms[0]) <= set(terms[1]), terms  # the template's words and the kept keywords


# ---------------------------------------------------------------- prompt targets (issue 12)
def _with_defaults(node_id: str, **inputs) -> dict:
    """An API-format node: every widget at its INPUT_TYPES default, then ``inputs``."""
    spec = NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()
    values = {}
    for section in ("required", "optional"):
        for name, value in (spec.get(section) or {}).items():
            options = value[1] if len(value) > 1 else {}
            if isinstance(value[0], list):
                values[name] = options.get("default", value[0][0])
            elif "default" in options:
                values[name] = options["default"]
    return {"class_type": node_id, "inputs": {**values, **inputs}}


def test_prompt_targets_and_thinking_output_in_comfyui(comfyui, tmp_path):
    """Build Prompt natural / json inside ComfyUI (counted with ComfyUI's bundled T5 tokenizer, no weight
    syntax), Expand Prompt's prompt + thinking outputs, both through POST /prompt."""
    import re

    from llm_assist.runner.server import run_on_server

    url, _ = comfyui
    caption = "a black dog running in the snow with a red ball"
    prompt = {
        "1": _with_defaults("LLMAssistExtractKeywords", caption=caption),
        "2": _with_defaults("LLMAssistBuildPrompt", keywords=["1", 0], target="natural", token_budget=0,
                            must_keep="(wet fur:1.3)"),
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["2", 3]}},
        "5": _with_defaults("LLMAssistBuildPrompt", keywords=["1", 0], target="json", token_budget=0),
        "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 1]}},
        "7": _with_defaults("LLMAssistLoadLanguageModel", model="tiny-qwen2-chat"),
        "8": _with_defaults("LLMAssistExpandPrompt", language_model=["7", 0], text="a red fox", max_new_tokens=8,
                            preset="auto", target="natural"),
        "9": {"class_type": "PreviewAny", "inputs": {"source": ["8", 0]}},
        "10": {"class_type": "PreviewAny", "inputs": {"source": ["8", 1]}},
    }
    path = tmp_path / "prompt_targets_api.json"
    path.write_text(json.dumps(prompt))
    result = run_on_server(path, url, output_dir=tmp_path / "out")
    natural, report = result.outputs["3"]["text"][0], json.loads(result.outputs["4"]["text"][0])
    assert natural.startswith("Wet fur as the main subject.") and not re.search(r"\([^()]*:\s*[\d.]+\s*\)", natural)
    assert report["counter"] == "ComfyUI's bundled t5 tokenizer" and report["converted"] == ["(wet fur:1.3)"]
    assert report["language"] == "english" and report["target"] == "natural"
    data = json.loads(result.outputs["6"]["text"][0])
    assert data["subject"] == "dog" or data["subject"].endswith("dog")
    assert result.outputs["9"]["text"][0].strip() and "<think>" not in result.outputs["9"]["text"][0]
    assert result.outputs["10"]["text"] == [""]  # the tiny model writes no <think> block


def test_natural_prompt_example_runs_in_comfyui(comfyui, tmp_path):
    """The FLUX example in a real ComfyUI: Build Prompt (auto -> natural for the tiny FLUX.1, counted with its
    T5 tokenizer) -> Generate. The native-sampler branch is muted: ComfyUI cannot detect the tiny checkpoint's
    model type (it needs real layer sizes); the editor check validates that branch's links instead."""
    from llm_assist.runner.server import run_on_server
    from llm_assist.runner.tiny_sets import tiny_model_sets, without_native_branch

    url, _ = comfyui
    ui = json.loads((REPO / "example_workflows" / "natural_prompt.json").read_text(encoding="utf-8"))
    wf, muted = without_native_branch(ui)
    path = tmp_path / "natural_prompt.json"
    path.write_text(json.dumps(wf))
    result = run_on_server(path, url, sets=tiny_model_sets(path), output_dir=tmp_path / "out")
    pngs = [p for p in result.files if p.suffix == ".png"]
    assert len(muted) == 7 and len(pngs) == 1 and pngs[0].name.startswith("natural")
    title = {n.get("title"): str(n["id"]) for n in ui["nodes"]}
    report = json.loads(result.outputs[title["Build Prompt report"]]["text"][0])
    assert (report["target"], report["family"], report["budget"]) == ("natural", "flux", 512)
    assert report["counter"] == "t5 tokenizer of the flux pipeline"


def test_image_files_caption_a_folder_in_bounded_memory_in_comfyui(comfyui):
    """Load Image Folder's files output (load_images off, max_side) into Caption Image's image_files and
    on to Save Captions, inside ComfyUI; load_images off while a node reads the images output is a clear
    error there (the hidden PROMPT / UNIQUE_ID inputs), not a silent empty list."""
    url, log_path = comfyui
    out = "llma_image_files"
    prompt = {
        "1": _with_defaults("LLMAssistLoadImageFolder", path="dataset", max_side=32, load_images=False),
        "2": _with_defaults("LLMAssistLoadCaptioner", model="tiny-blip"),
        "3": _with_defaults("LLMAssistCaptionImage", captioner=["2", 0], image_files=["1", 3], max_new_tokens=4),
        "4": _with_defaults("LLMAssistSaveCaptions", captions=["3", 0], image_paths=["1", 1], output_folder=out,
                            mode="overwrite"),
    }
    entry = _wait_history(url, _queue(url, prompt))
    assert entry["status"].get("status_str") == "success", entry["status"]
    written = sorted(p.name for p in (log_path.parent / "output" / out).glob("*.txt"))
    assert written == ["scene_1.txt", "scene_2.txt"], written
    assert "2 written" in entry["outputs"]["4"]["text"][0]
    prompt["5"] = {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
    entry = _wait_history(url, _queue(url, prompt))
    assert entry["status"].get("status_str") == "error"
    assert "load_images is off but node(s) 5 read the images output" in json.dumps(entry["status"])


# ---------------------------------------------------------------- diffusion families (issue 12)
def test_load_pipeline_and_generate_for_every_tiny_family_in_comfyui(comfyui):
    """Load Diffusion Pipeline + Generate (64 px, 2 steps) on each family's tiny pipeline, one prompt;
    an edit-only variant (Qwen-Image-Edit: no text-to-image) runs Enhance on ComfyUI's LoadImage instead."""
    from llm_assist.core.tiny_models import FAMILY_PARTS

    edit_only = {"tiny-qwen-image-edit"}
    url, log_path = comfyui
    prompt = {"0": {"class_type": "LoadImage", "inputs": {"image": "example.png"}}}
    for i, name in enumerate(FAMILY_PARTS):
        load, gen, show = str(3 * i + 1), str(3 * i + 2), str(3 * i + 3)
        prompt[load] = _with_defaults("LLMAssistLoadPipeline", model=name, device="cpu", dtype="fp32")
        if name in edit_only:
            prompt[gen] = _with_defaults("LLMAssistEnhance", pipeline=[load, 0], image=["0", 0], seed=i, steps=2,
                                         cfg=2.0, strength=0.6, positive="a photo of a cat on a table")
        else:
            prompt[gen] = _with_defaults("LLMAssistGenerate", pipeline=[load, 0], seed=i, steps=2, cfg=2.0, width=64,
                                         height=64, positive="a photo of a cat on a table")
        prompt[show] = {"class_type": "PreviewImage", "inputs": {"images": [gen, 0]}}
    entry = _wait_history(url, _queue(url, prompt), timeout=900)
    status = entry["status"]
    assert status.get("status_str") == "success", (status.get("messages"), log_path.read_text()[-3000:])
    for i, name in enumerate(FAMILY_PARTS):
        images = entry["outputs"].get(str(3 * i + 3), {}).get("images")
        assert images, f"{name}: no image in ComfyUI's history"


def test_compare_images_in_comfyui_equals_scikit_image(comfyui):
    """Compare Images (strip-wise MSE / PSNR / SSIM) inside ComfyUI on two LoadImage outputs: the report
    equals scikit-image on the same pixels."""
    import numpy as np
    from PIL import Image
    from skimage.metrics import mean_squared_error, structural_similarity

    url, log_path = comfyui
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "example_mask.png"}},
        "3": _with_defaults("LLMAssistCompareImages", image_a=["1", 0], image_b=["2", 0]),
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 3]}},
    }
    entry = _wait_history(url, _queue(url, prompt))
    assert entry["status"].get("status_str") == "success", entry["status"]
    report = json.loads(entry["outputs"]["4"]["text"][0])
    pixels = [np.asarray(Image.open(log_path.parent / "input" / n).convert("RGB"), dtype=np.float64) / 255.0
              for n in ("example.png", "example_mask.png")]
    expected = structural_similarity(*pixels, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
    assert abs(report["images"][0]["ssim"] - expected) < 1e-6  # ComfyUI's float32 pixels vs float64 here
    assert abs(report["images"][0]["mse"] - mean_squared_error(*pixels)) < 1e-6
