"""Dependency floors (issue 11): one table (hf_loading.FLOORS) that the requirement files follow,
one clear message at the first node that needs a library older than its floor, and the
from_pretrained dtype argument named as each release calls it."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from llm_assist.core import hf_loading

REPO = Path(__file__).resolve().parents[1]
LOADER = dict(device="cpu", dtype="auto", quantization="none", attention="auto", trust_remote_code=False,
              allow_download=False, keep_loaded=True)


def _pins(text: str, op: str) -> dict[str, str]:
    """``{package: version}`` of the lines ``package<op>version`` (comments and markers ignored)."""
    found = {}
    for line in text.splitlines():
        m = re.match(rf"^\s*\"?([A-Za-z0-9_.-]+)\s*{re.escape(op)}\s*([0-9][0-9A-Za-z.+]*)", line)
        if m:
            found[m.group(1).lower().replace("-", "_")] = m.group(2)
    return found


def test_requirement_files_follow_the_floor_table():
    floors = {k.lower(): v for k, v in hf_loading.FLOORS.items()}
    runtime = _pins((REPO / "requirements.txt").read_text(encoding="utf-8"), ">=")
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    deps = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    exact = _pins((REPO / "requirements-floor.txt").read_text(encoding="utf-8"), "==")
    for package, floor in floors.items():
        assert runtime.get(package) == floor, f"requirements.txt: {package}>={floor} expected"
        assert _pins(deps, ">=").get(package) == floor, f"pyproject dependencies: {package}>={floor} expected"
        assert exact.get(package) == floor, f"requirements-floor.txt: {package}=={floor} expected"
    assert exact.get("torch") == "2.13.0" and "torchvision" not in exact


@pytest.mark.parametrize("node_name, package, old", [
    ("LLMAssistLoadLanguageModel", "transformers", "4.37.2"),  # ComfyUI's own pin allows 4.37
    ("LLMAssistLoadCaptioner", "tokenizers", "0.15.2"),
    ("LLMAssistLoadPipeline", "diffusers", "0.25.1"),
])
def test_an_old_library_is_one_clear_message_at_the_first_node_that_needs_it(
        node_name, package, old, models_root, monkeypatch):
    import llm_assist

    real = hf_loading.installed_version
    monkeypatch.setattr(hf_loading, "installed_version", lambda name: old if name == package else real(name))
    cls = llm_assist.NODE_CLASS_MAPPINGS[node_name]
    model = {"LLMAssistLoadPipeline": "tiny-sd15", "LLMAssistLoadCaptioner": "tiny-blip"}.get(node_name, "tiny-gpt2")
    args = dict(model=model, scheduler="as saved", device="cpu", dtype="auto") if package == "diffusers" \
        else dict(model=model, **LOADER)
    with pytest.raises(hf_loading.DependencyTooOld) as info:
        getattr(cls(), cls.FUNCTION)(**args)
    message = str(info.value)
    needed = hf_loading.FLOORS[package]
    assert f"needs {package}>={needed}" in message and f"found {package} {old}" in message
    assert "pip install" in message and type(info.value.__cause__).__name__ != "TypeError"


def test_a_model_family_newer_than_the_library_explains_itself(tiny_models, tmp_path):
    """A folder saved as a class the installed release lacks (e.g. a model family newer than a
    floor-version transformers / diffusers): the loader names the class, the release and the fix."""
    import json
    import shutil

    import llm_assist
    from llm_assist.core import host

    lm = tmp_path / "LLM" / "future-lm"
    shutil.copytree(tiny_models / "LLM" / "tiny-gpt2", lm)
    config = json.loads((lm / "config.json").read_text(encoding="utf-8"))
    (lm / "config.json").write_text(json.dumps({**config, "architectures": ["Gpt9ForCausalLM"]}), encoding="utf-8")
    pipe = tmp_path / "diffusers" / "future-pipe"
    shutil.copytree(tiny_models / "diffusers" / "tiny-sd15", pipe)
    index = json.loads((pipe / "model_index.json").read_text(encoding="utf-8"))
    (pipe / "model_index.json").write_text(json.dumps({**index, "_class_name": "Sd9Pipeline"}), encoding="utf-8")
    nodes = llm_assist.NODE_CLASS_MAPPINGS
    previous = host.set_models_root(tmp_path)
    try:
        with pytest.raises(hf_loading.DependencyTooOld, match=r"future-lm is a Gpt9ForCausalLM model, which "
                           r"transformers [0-9.]+ does not have .*pip install -U transformers"):
            nodes["LLMAssistLoadLanguageModel"]().load(model="future-lm", **LOADER)
        with pytest.raises(hf_loading.DependencyTooOld, match=r"future-pipe is a Sd9Pipeline model, which "
                           r"diffusers [0-9.]+ does not have"):
            nodes["LLMAssistLoadPipeline"]().load(model="future-pipe", scheduler="as saved", device="cpu", dtype="auto")
    finally:
        host.set_models_root(previous)


def test_a_missing_library_is_named_too(monkeypatch):
    monkeypatch.setattr(hf_loading, "installed_version", lambda name: None)
    with pytest.raises(hf_loading.DependencyTooOld, match="needs accelerate>=.*not installed"):
        hf_loading.require_versions("accelerate")


def test_the_installed_stack_meets_the_floors():
    hf_loading.require_versions(*hf_loading.FLOORS)


@pytest.mark.parametrize("library, version, name", [
    ("transformers", "4.46.3", "torch_dtype"), ("transformers", "4.55.4", "torch_dtype"),
    ("transformers", "4.56.0", "dtype"), ("transformers", "5.24.0", "dtype"),
    ("diffusers", "0.31.0", "torch_dtype"), ("diffusers", "0.39.0", "torch_dtype"),
    ("diffusers", "0.40.0", "dtype"), ("diffusers", "0.42.1", "dtype"),
])
def test_dtype_argument_is_named_as_each_release_calls_it(library, version, name, monkeypatch):
    monkeypatch.setattr(hf_loading, "installed_version", lambda package: version)
    assert hf_loading.dtype_kwarg(library, "x") == {name: "x"}


def test_the_real_libraries_take_the_chosen_dtype_argument(tiny_models):
    """On whatever stack runs the suite (pinned, floor or latest): the argument the shim picks is
    honoured by transformers, diffusers' from_pretrained and its single-file loader (fp16 asked,
    fp16 loaded), so a renamed argument can't silently load fp32."""
    import torch
    from diffusers import AutoencoderTiny, StableDiffusionPipeline
    from transformers import AutoModelForCausalLM

    half = torch.float16
    lm = AutoModelForCausalLM.from_pretrained(tiny_models / "LLM" / "tiny-gpt2", **hf_loading.dtype_kwarg("transformers", half))
    assert lm.dtype == half
    vae = AutoencoderTiny.from_pretrained(tiny_models / "vae_approx" / "tiny-taesd", **hf_loading.dtype_kwarg("diffusers", half))
    assert vae.dtype == half
    pipe = StableDiffusionPipeline.from_single_file(
        str(tiny_models / "checkpoints" / "tiny-sd15.safetensors"), local_files_only=True,
        cache_dir=str(tiny_models / "hf-cache" / "hub"), **hf_loading.dtype_kwarg("diffusers", half))
    assert pipe.unet.dtype == half and pipe.text_encoder.dtype == half


def test_importing_the_pack_checks_no_versions():
    """The check runs at a node, never when ComfyUI imports the pack (an old library must not
    stop ComfyUI from starting or hide the other nodes)."""
    code = ("import llm_assist, llm_assist.nodes; from llm_assist.core import hf_loading; "
            "print(hf_loading.installed_version.cache_info().currsize)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0"
