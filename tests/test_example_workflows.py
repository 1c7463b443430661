"""The example workflows: static checks for all of them, headless runs with the tiny models.

Static: the files are what tools/build_workflows.py makes, every node type exists (the pack's or a
known core node), every link is typed with its source output and accepted by its target input,
widgets_values match the widgets (with the seed-control and upload extras), each has a .jpg
thumbnail, and the runner converts each to an API prompt. Headless: every workflow but
native_bridge (which needs ComfyUI's own sampler) runs end to end with only its model choices
(and the dataset folder) switched by runner.tiny_sets; natural_prompt runs with its native-sampler
branch muted (runner.tiny_sets.without_native_branch: no sampler here, and ComfyUI cannot load the tiny
checkpoint; tests/test_comfyui_integration.py runs the rest in a real ComfyUI). model_server runs
against the session's real ``transformers serve`` (conftest ``serve``), its base_url switched to it.
"""
import json
import re
from pathlib import Path

import pytest

import llm_assist
from llm_assist import NODE_CLASS_MAPPINGS
from llm_assist.runner import clear_caches, run_workflow, to_api_prompt
from llm_assist.runner.tiny_sets import NATIVE_SAMPLER_NODES as NATIVE
from llm_assist.runner.tiny_sets import tiny_model_sets, without_native_branch
from llm_assist.runner.workflow import FRONTEND_ONLY
from llm_assist.tools import build_workflows
from llm_assist.tools.workflow_graph import CORE_NODES, accepts, schema

REPO = Path(llm_assist.__file__).resolve().parent
FOLDER = REPO / "example_workflows"
NAMES = ["variation", "enhancement", "repair", "editing", "evaluation_loop", "dataset_captioning", "native_bridge",
         "natural_prompt", "model_server"]
HEADLESS = [n for n in NAMES if n not in ("native_bridge", "model_server")]  # model_server: its own test


def _load(name):
    return json.loads((FOLDER / f"{name}.json").read_text(encoding="utf-8"))


def test_the_example_workflows_and_nothing_else():
    assert sorted(p.stem for p in FOLDER.glob("*.json")) == sorted(NAMES)
    assert sorted(build_workflows.WORKFLOWS) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_file_is_what_the_builder_makes(name):
    built = build_workflows.render(build_workflows.build(name))
    assert (FOLDER / f"{name}.json").read_text(encoding="utf-8") == built, (
        "run: python -m llm_assist.tools.build_workflows")


@pytest.mark.parametrize("name", NAMES)
def test_thumbnail_exists(name):
    thumb = FOLDER / f"{name}.jpg"
    assert thumb.is_file() and thumb.read_bytes()[:3] == b"\xff\xd8\xff", f"{thumb} missing or not a JPEG"


@pytest.mark.parametrize("name", NAMES)
def test_static_structure(name):
    wf = _load(name)
    assert wf["version"] == 0.4 and {"last_node_id", "last_link_id", "nodes", "links", "groups", "config", "extra"} <= set(wf)
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert len(nodes) == len(wf["nodes"]) and wf["last_node_id"] == max(nodes)
    assert wf["last_link_id"] == max(link[0] for link in wf["links"])
    schemas = {}
    for node in wf["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            continue
        found = schema(node["type"])
        assert found is not None, f"node {node['id']}: unknown type {node['type']}"
        assert node["type"] in NODE_CLASS_MAPPINGS or node["type"] in CORE_NODES
        schemas[node["id"]] = found
        expected = sum(s.widget_value_count for s in found.widgets)
        assert len(node["widgets_values"]) == expected, (node["type"], node["widgets_values"])
        i = 0
        for spec in found.widgets:  # the extras are where the editor puts them
            if spec.has_control_value:
                assert node["widgets_values"][i + 1] in ("fixed", "randomize", "increment", "decrement")
            if spec.options.get("image_upload"):
                assert node["widgets_values"][i + 1] == "image"
            i += spec.widget_value_count
        for slot, entry in enumerate(node["inputs"]):  # no socket input left unlinked when required
            spec = found.input(entry["name"])
            assert spec is not None, (node["type"], entry["name"])
            if spec.category == "required" and not spec.is_widget:
                assert entry["link"] is not None, f"{node['type']}.{entry['name']} is required but not linked"
    for link_id, origin, origin_slot, target, target_slot, kind in wf["links"]:
        source, dest = nodes[origin], nodes[target]
        assert source["outputs"][origin_slot]["type"] == kind == schemas[origin].outputs[origin_slot]
        assert link_id in source["outputs"][origin_slot]["links"]
        entry = dest["inputs"][target_slot]
        assert entry["link"] == link_id
        spec = schemas[target].input(entry["name"])
        assert accepts(kind, spec.type if spec.combo_options is None else "COMBO"), (kind, dest["type"], entry["name"])
        if spec.is_widget:
            assert entry["widget"] == {"name": entry["name"]}


@pytest.mark.parametrize("name", NAMES)
def test_runner_converts_to_api_prompt(name):
    classes = dict(NODE_CLASS_MAPPINGS)
    classes.update({k: v for k, v in CORE_NODES.items() if k not in ("LoadImage", "SaveImage", "PreviewAny")})
    from llm_assist.runner.stand_ins import STAND_IN_CLASSES

    classes.update(STAND_IN_CLASSES)
    prompt = to_api_prompt(FOLDER / f"{name}.json", classes)
    wf = _load(name)
    assert len(prompt) == sum(1 for n in wf["nodes"] if n["type"] not in FRONTEND_ONLY)
    assert sum(1 for n in prompt.values() for v in n["inputs"].values() if isinstance(v, list)) == len(wf["links"])


def test_tiny_sets_switch_every_loader():
    sets = tiny_model_sets(FOLDER / "repair.json")
    assert any(s.endswith(".model=tiny-sd15-inpaint") for s in sets) and any(s.endswith("=tiny-blip") for s in sets)
    assert any(s.endswith(".model=tiny-qwen2-chat") for s in tiny_model_sets(FOLDER / "variation.json"))
    loop = tiny_model_sets(FOLDER / "evaluation_loop.json")
    assert sorted(s.split("=")[1] for s in loop) == ["tiny-blip", "tiny-clip", "tiny-sd15"]
    assert tiny_model_sets(FOLDER / "native_bridge.json")[-1].endswith(".ckpt_name=tiny-sd15.safetensors")
    natural = sorted(s.split("=")[1] for s in tiny_model_sets(FOLDER / "natural_prompt.json"))
    assert natural == ["tiny-blip", "tiny-flux", "tiny-sd15.safetensors"]
    assert tiny_model_sets(FOLDER / "model_server.json") == []  # no model combo: the server decides
    served = tiny_model_sets(FOLDER / "model_server.json", server_url="http://127.0.0.1:9/v1")
    assert [s.split(".", 1)[1] for s in served] == ["base_url=http://127.0.0.1:9/v1"]
    folder = tiny_model_sets(FOLDER / "dataset_captioning.json", image_folder="/data/x")
    assert any(s.endswith(".path=/data/x") for s in folder)
    assert not any(".path=" in s for s in tiny_model_sets(FOLDER / "dataset_captioning.json", image_folder=None))


# ---------------------------------------------------------------- headless runs
@pytest.fixture(scope="module")
def one_thread():
    """One torch thread: on a shared 2-core machine two threads spin against each other and the tiny
    pipeline's 20 steps take 25 s instead of 1 s (measured)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def run_env(models_root, one_thread, tmp_path):
    from llm_assist.core.sample_images import write_example_images

    inputs = tmp_path / "input"
    write_example_images(inputs, size=64)
    clear_caches()
    yield inputs, tmp_path / "output"
    clear_caches()


def _without_native_branch(name, folder):
    wf, muted = without_native_branch(_load(name))
    path = folder / f"{name}.json"
    path.write_text(json.dumps(wf), encoding="utf-8")
    return path, muted


def _texts(result):
    return {node_id: ui["text"] for node_id, ui in result.outputs.items() if "text" in ui}


def _titled(name, title):
    return next(str(n["id"]) for n in _load(name)["nodes"] if n.get("title") == title)


@pytest.mark.parametrize("name", HEADLESS)
def test_runs_headless_with_tiny_models(name, run_env):
    inputs, output = run_env
    folder = inputs / "dataset"  # the dataset example's saved path, filled by write_example_images
    workflow, muted = FOLDER / f"{name}.json", set()
    if any(n["type"] in NATIVE for n in _load(name)["nodes"]):
        workflow, muted = _without_native_branch(name, inputs.parent)
    sets = tiny_model_sets(workflow)
    assert all(item.split("=", 1)[0].endswith((".model", ".ckpt_name")) for item in sets), sets  # models only
    result = run_workflow(workflow, sets=sets, output_dir=output, input_dir=inputs)
    texts = _texts(result)
    previews = [str(n["id"]) for n in _load(name)["nodes"] if n["type"] == "PreviewAny"]
    for node_id in previews:
        assert texts[node_id] and all(isinstance(t, str) and t for t in texts[node_id]), (node_id, texts.get(node_id))
    pngs = [p for p in result.files if p.suffix == ".png"]
    if name == "dataset_captioning":
        assert not pngs
        assert sorted(p.name for p in folder.glob("*.txt")) == ["scene_1.txt", "scene_2.txt"]
        assert sorted(p.name for p in (output / "dataset_tags").glob("*.txt")) == ["scene_1.txt", "scene_2.txt"]
        return
    assert len(pngs) == (4 if name == "evaluation_loop" else 1) and all(p.is_file() for p in pngs)
    if name == "natural_prompt":  # the FLUX pipeline's natural target: sentences, no weight syntax, T5 count
        assert len(muted) == 7
        text = texts[_titled(name, "Natural-language prompt")][0]
        report = json.loads(texts[_titled(name, "Build Prompt report")][0])
        assert (report["target"], report["family"], report["encoder"], report["budget"]) == ("natural", "flux", "t5", 512)
        assert "t5 tokenizer" in report["counter"] and report["token_count"] <= 512
        assert text and not re.search(r"\([^()]*:\s*[\d.]+\s*\)", text)
    assert all(p.parent == output / "llm-assist" for p in pngs)
    if name == "evaluation_loop":
        from PIL import Image

        assert Image.open(pngs[0]).size == (build_workflows.GENERATE_SIZE,) * 2
        report = json.loads(texts[_titled(name, "Metrics report")][0])
        assert len(json.dumps(report)) > 100 and "clip score" in json.dumps(report)
    if name == "repair":  # the area outside the mask is kept (preserve_unmasked)
        metrics = json.loads(texts[_titled(name, "Metrics outside the mask")][0])
        assert metrics["mean"]["mse"] < 1e-4, metrics
    if name == "enhancement":
        metrics = json.loads(texts[_titled(name, "Metrics (source vs enhanced)")][0])
        assert metrics["count"] == 1 and 0 < metrics["mean"]["mse"] < 1


def test_model_server_example_runs_headless_through_transformers_serve(run_env, serve):
    """Connect Model Server -> Caption Image -> keywords -> Build Prompt / Expand Prompt with the session's
    real transformers serve (a tiny vision-language model): only base_url is switched, no model loads here."""
    inputs, output = run_env
    name = "model_server"
    workflow = FOLDER / f"{name}.json"
    sets = tiny_model_sets(workflow, server_url=serve.url)
    assert len(sets) == 1 and sets[0].endswith(f".base_url={serve.url}"), sets
    result = run_workflow(workflow, sets=sets, output_dir=output, input_dir=inputs)
    texts = _texts(result)
    for node_id in (str(n["id"]) for n in _load(name)["nodes"] if n["type"] == "PreviewAny"):
        assert len(texts[node_id]) == 1 and texts[node_id][0].strip(), (node_id, texts.get(node_id))
    assert Path(serve.model).name in texts[_titled(name, "Server models")][0]  # listed by the server
    caption = texts[_titled(name, "Caption")][0]
    assert caption.strip() and not result.files  # text only: nothing saved
    # temperature 0 (the example's default) on the same server: a second run gives the same texts
    clear_caches()
    again = _texts(run_workflow(workflow, sets=sets, output_dir=output, input_dir=inputs))
    assert again == texts
