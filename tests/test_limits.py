"""Limits are messages, not tracebacks (issue 15 §5): context length, CPU OOM, odd images and weights.

Seeded tiny models; generated cases for max_new_tokens / text length.
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from llm_assist.core import captioning as C
from llm_assist.core import faults, hf_loading, image_folder
from llm_assist.core.context_limits import clamp_new_tokens, context_length
from llm_assist.core.language_model import build_model_input, generate_text, load_language_model

CPU_OOM = ("[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate memory: you tried to "
           "allocate 68719476736 bytes. Error code 12 (Cannot allocate memory)")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture()
def gpt2(models_root):
    return load_language_model("tiny-gpt2", hf_loading.LoadOptions(device="cpu", dtype="fp32"))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(max_new=st.integers(1, 1024), words=st.integers(1, 60))
def test_max_new_tokens_is_clamped_and_the_prompt_kept_whole(gpt2, max_new, words):
    limit = context_length(gpt2.model.config)
    text = " ".join(["a red cat on a mat"] * words)
    instruction = "Rewrite as a prompt."
    full = gpt2.tokenizer(build_model_input(gpt2, instruction, text), return_tensors="pt")["input_ids"]
    seen = []
    real_generate = gpt2.model.generate

    def spy(**kwargs):  # records what the model was given, then really generates
        seen.append((kwargs["input_ids"].shape[1], kwargs["max_new_tokens"]))
        return real_generate(**kwargs)

    gpt2.model.generate = spy
    try:
        if full.shape[1] >= limit:
            with pytest.raises(ValueError, match=f"reads at most {limit}"):
                generate_text(gpt2, instruction, text, max_new_tokens=max_new)
            assert not seen
            return
        generate_text(gpt2, instruction, text, max_new_tokens=max_new)
    finally:
        del gpt2.model.generate
    (prompt_len, new), = seen
    assert prompt_len == full.shape[1]  # the instruction is never cut
    assert new == min(max_new, limit - prompt_len) and prompt_len + new <= limit


@pytest.mark.parametrize("name", ["tiny-vit-gpt2", "tiny-blip"])
def test_captioners_clamp_max_new_tokens_to_the_decoder(models_root, name):
    captioner = C.load_captioner(name)
    images = [Image.new("RGB", (32, 32), (i * 40, 90, 160)) for i in range(3)]
    captions = C.caption_images(captioner, images, C.CaptionSettings(max_new_tokens=1024, batch_size=2))
    assert len(captions) == 3 and all(isinstance(c, str) for c in captions)


def test_clamp_rule():
    cfg = type("Cfg", (), {"n_positions": 64})()
    assert clamp_new_tokens(cfg, 10, 20, "m") == 20 and clamp_new_tokens(cfg, 10, 100, "m") == 54
    with pytest.raises(ValueError, match="64"):
        clamp_new_tokens(cfg, 64, 1, "m")
    nested = type("Cfg", (), {"decoder": cfg})()
    assert context_length(nested) == 64 and context_length(object()) is None


def test_cpu_out_of_memory_is_recognised(gpt2, models_root):
    assert faults.is_oom(RuntimeError(CPU_OOM)) and faults.is_oom(MemoryError())
    assert not faults.is_oom(RuntimeError("index out of range in self"))
    with faults.inject("oom", factory=lambda: RuntimeError(CPU_OOM)), pytest.raises(ValueError, match="out of memory generating"):
        generate_text(gpt2, "Rewrite.", "a cat", max_new_tokens=4)
    assert generate_text(gpt2, "Rewrite.", "a cat", max_new_tokens=4) is not None  # usable afterwards
    captioner = C.load_captioner("tiny-vit-gpt2")
    with faults.inject("oom", factory=lambda: RuntimeError(CPU_OOM)), pytest.raises(ValueError, match="out of memory captioning"):
        C.caption_images(captioner, [Image.new("RGB", (32, 32))], C.CaptionSettings(max_new_tokens=3))


@pytest.mark.parametrize("scale", [1.0, 255.0, 65535.0])
def test_float32_tiff_is_not_black(tmp_path, scale):
    ramp = np.linspace(0, 1, 48 * 32, dtype=np.float32).reshape(32, 48)
    Image.fromarray(ramp * scale, "F").save(tmp_path / "f.tif")
    with Image.open(tmp_path / "f.tif") as im:
        assert im.mode == "F"
    rgb = np.asarray(image_folder.load_pil(tmp_path / "f.tif"))
    assert rgb.shape == (32, 48, 3) and rgb.max() == 255 and rgb[0, 0, 0] == 0
    assert abs(float(rgb.mean()) - 127.5) < 2


def test_diffusers_component_with_auto_map_is_refused(tiny_models, tmp_path):
    from llm_assist.core import host
    from llm_assist.core.diffusion.loading import load_pipeline

    folder = tmp_path / "diffusers" / "custom-te"
    shutil.copytree(tiny_models / "diffusers" / "tiny-sd15", folder)
    config = folder / "text_encoder" / "config.json"
    data = json.loads(config.read_text())
    data["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    config.write_text(json.dumps(data))
    previous = host.set_models_root(tmp_path)
    try:
        with pytest.raises(ValueError, match=r"text_encoder/config.json has auto_map"):
            load_pipeline("custom-te", options=hf_loading.LoadOptions(device="cpu", keep_loaded=False))
    finally:
        host.set_models_root(previous)


def _copy_lm(tiny_models, tmp_path):
    folder = tmp_path / "LLM" / "tiny-gpt2"
    shutil.copytree(tiny_models / "LLM" / "tiny-gpt2", folder)
    return folder, next(folder.glob("*.safetensors"))


def test_weights_that_are_a_folder_are_a_message(tiny_models, tmp_path):
    from llm_assist.core import host

    folder, weights = _copy_lm(tiny_models, tmp_path)
    weights.unlink()
    weights.mkdir()
    previous = host.set_models_root(tmp_path)
    try:
        with pytest.raises(ValueError, match="cannot read weights file .*it is a folder"):
            load_language_model("tiny-gpt2", hf_loading.LoadOptions(keep_loaded=False))
    finally:
        host.set_models_root(previous)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_weights_are_a_message(tiny_models, tmp_path):
    from llm_assist.core import host

    folder, weights = _copy_lm(tiny_models, tmp_path)
    weights.chmod(0)
    previous = host.set_models_root(tmp_path)
    try:
        with pytest.raises(ValueError, match="cannot read weights file .*permission denied"):
            load_language_model("tiny-gpt2", hf_loading.LoadOptions(keep_loaded=False))
    finally:
        weights.chmod(0o644)
        host.set_models_root(previous)


def test_permission_error_from_a_library_is_translated(tmp_path):
    exc = PermissionError(13, "Permission denied", str(tmp_path / "text_encoder" / "model.safetensors"))
    clearer = hf_loading.translate_load_error(exc, "tiny-sd15")
    assert isinstance(clearer, ValueError) and "permission denied" in str(clearer) and "text_encoder" in str(clearer)
