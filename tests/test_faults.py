"""Faults (issue 7): cancel anywhere, out of memory, a killed folder batch, corrupted weights.

After each fault the cached models must still work and the next run must equal a clean run.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

import llm_assist
from llm_assist.core import faults, host
from llm_assist.core.images import to_pil

NODES = llm_assist.NODE_CLASS_MAPPINGS


def _node(name):
    cls = NODES[name]
    return getattr(cls(), cls.FUNCTION)


def _image(seed=0, b=1, size=32):
    return torch.rand(b, size, size, 3, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def handles(tiny_models):
    previous = host.set_models_root(tiny_models)
    common = dict(device="cpu", dtype="fp32", quantization="none", attention="auto", trust_remote_code=False,
                  allow_download=False, keep_loaded=True)
    out = {
        "captioner": _node("LLMAssistLoadCaptioner")(model="tiny-blip", **common)[0],
        "lm": _node("LLMAssistLoadLanguageModel")(model="tiny-qwen2-chat", **common)[0],
        "pipeline": _node("LLMAssistLoadPipeline")(model="tiny-sd15", scheduler="as saved", device="cpu", dtype="fp32")[0],
    }
    yield out
    host.set_models_root(previous)


def _caption(h, images, **kw):
    args = dict(captioner=[h["captioner"]], image=[images], instruction=["short"], custom_instruction=[""],
                max_new_tokens=[8], num_beams=[1], do_sample=[False], temperature=[0.7], top_p=[0.9], seed=[0],
                batch_size=[2])
    args.update({k: [v] for k, v in kw.items()})
    return _node("LLMAssistCaptionImage")(**args)[0]


def _generate(h, **kw):
    args = dict(pipeline=h["pipeline"], seed=7, steps=2, cfg=5.0, width=64, height=64, batch_size=1,
                positive="a black cat", negative="")
    args.update(kw)
    return _node("LLMAssistGenerate")(**args)[0]


def _expand(h, **kw):
    args = dict(mode="generate", preset="sd prompt", custom_instruction="", seed=0, max_new_tokens=8, temperature=0.0,
                token_budget=77, fixed_text="", language_model=h["lm"], text="a black cat")
    args.update(kw)
    return _node("LLMAssistExpandPrompt")(**args)["result"][0]


class _CancelAt:
    """A progress listener that presses Cancel once progress reaches ``at``."""

    def __init__(self, at: int, armed=lambda: True):
        self.at, self.fired, self.armed = at, False, armed

    def __call__(self, current, total):
        if not self.fired and current >= self.at and self.armed():
            self.fired = True
            host.request_interrupt()

    def __enter__(self):
        host.add_progress_listener(self)
        return self

    def __exit__(self, *exc):
        host.remove_progress_listener(self)
        host.clear_interrupt()


# ---------------------------------------------------------------- cancel
def test_cancel_mid_caption_token_loop_leaves_the_captioner_usable(handles):
    images = _image(0, b=4)
    clean = _caption(handles, images)
    with _CancelAt(1) as cancel, pytest.raises(host.Interrupted):
        _caption(handles, images)
    assert cancel.fired
    assert _caption(handles, images) == clean


def test_cancel_mid_diffusion_leaves_the_pipeline_usable(handles):
    clean = _generate(handles)
    with _CancelAt(1) as cancel, pytest.raises(host.Interrupted):
        _generate(handles, steps=3)
    assert cancel.fired
    assert torch.equal(_generate(handles), clean)


def test_cancel_mid_expand_leaves_the_language_model_usable(handles):
    clean = _expand(handles)
    with _CancelAt(1) as cancel, pytest.raises(host.Interrupted):
        _expand(handles)
    assert cancel.fired
    assert _expand(handles) == clean


def test_cancel_mid_folder_batch_then_resume_writes_each_caption_once(handles, tmp_path):
    from llm_assist.core.captioning import CaptionSettings
    from llm_assist.core.captioning_folder import caption_files

    paths = []
    for i in range(6):
        paths.append(tmp_path / f"img{i}.png")
        to_pil(_image(i))[0].save(paths[-1])
    settings = CaptionSettings(max_new_tokens=6, batch_size=2)
    done = []
    with _CancelAt(1, armed=lambda: bool(done)) as cancel, pytest.raises(host.Interrupted):  # in batch 2's tokens
        caption_files(handles["captioner"], paths, settings, on_progress=lambda d, t: done.append(d))
    assert cancel.fired and done == [2]
    assert sorted(p.name for p in tmp_path.glob("*.txt")) == ["img0.txt", "img1.txt"]
    result = caption_files(handles["captioner"], paths, settings)
    assert (result.already, result.count("written")) == (2, 4)
    from llm_assist.core import captioning, image_folder

    clean = captioning.caption_images(handles["captioner"], [image_folder.load_pil(p) for p in paths], settings)
    assert [(tmp_path / f"img{i}.txt").read_text() for i in range(6)] == clean
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


# ---------------------------------------------------------------- out of memory
def test_out_of_memory_in_generate_names_what_to_lower_and_recovers(handles):
    clean = _generate(handles)
    with faults.inject_oom(times=1), pytest.raises(ValueError, match="batch_size") as info:
        _generate(handles)
    assert "width/height" in str(info.value) and faults.fired("oom") == 1
    assert torch.equal(_generate(handles), clean)


def test_out_of_memory_mid_generate_frees_what_the_call_allocated(handles, monkeypatch):
    """A real allocation inside the pipeline call (64 MB held by the UNet's frame when the OOM is
    raised at the second step): after the error nothing keeps it alive, and the next run is clean."""
    import gc
    import weakref

    clean = _generate(handles)
    unet = handles["pipeline"].pipe.unet
    forward, held, calls = unet.forward, [], []

    def allocating_forward(*args, **kwargs):
        calls.append(1)
        activations = torch.ones(16 * 2**20)  # 64 MB, like the activations of a too-large step
        held.append(weakref.ref(activations))
        if len(calls) == 2:
            raise faults.FACTORIES["oom"]()
        return forward(*args, **kwargs)

    monkeypatch.setattr(unet, "forward", allocating_forward)
    with pytest.raises(ValueError, match="batch_size"):
        _generate(handles)
    gc.collect()
    assert len(held) == 2 and all(ref() is None for ref in held)  # the OOM'd step's 64 MB is freed
    monkeypatch.setattr(unet, "forward", forward)
    assert torch.equal(_generate(handles), clean)


def test_out_of_memory_in_caption_names_batch_size_and_recovers(handles):
    images = _image(1, b=2)
    clean = _caption(handles, images)
    with faults.inject_oom(times=1), pytest.raises(ValueError, match="batch_size"):
        _caption(handles, images)
    assert _caption(handles, images) == clean


def test_out_of_memory_in_expand_names_max_new_tokens_and_recovers(handles):
    clean = _expand(handles)
    with faults.inject_oom(times=1), pytest.raises(ValueError, match="max_new_tokens"):
        _expand(handles)
    assert _expand(handles) == clean


def test_fault_injector_is_inert_unless_armed():
    faults.maybe_raise("oom")  # nothing armed: no error
    with faults.inject("io", times=2):
        for _ in range(2):
            with pytest.raises(OSError):
                faults.maybe_raise("io")
        faults.maybe_raise("io")  # used up
    assert faults.fired("io") == 2
    with pytest.raises(ValueError, match="unknown fault kind"):
        with faults.inject("nope"):
            pass


# ---------------------------------------------------------------- killed folder batch
def test_caption_cli_killed_with_sigkill_then_restarted_finishes_exactly_once(tiny_models, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    n = 16
    for i in range(n):
        to_pil(_image(i, size=48))[0].save(folder / f"img{i:02}.png")
    cmd = [sys.executable, "-m", "llm_assist", "-q", "caption", str(folder), "--model", "tiny-blip", "--models",
           str(tiny_models), "--batch-size", "1", "--max-new-tokens", "12", "--device", "cpu"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(folder.glob("*.txt"))) < 3 and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    first = len(list(folder.glob("*.txt")))
    assert 3 <= first < n, f"the kill came at {first}/{n} captions: {proc.stderr.read().decode()[-500:]}"
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-1000:]
    texts = sorted(folder.glob("*.txt"))
    assert [p.stem for p in texts] == [f"img{i:02}" for i in range(n)]
    for p in texts:
        body = p.read_text()
        assert body.strip() and "\n" not in body.strip(), f"{p.name}: {body!r}"
    assert not [p for p in folder.iterdir() if ".tmp" in p.name], "temporary files were left behind"
    assert f"{first} skipped" in again.stdout, again.stdout


# ---------------------------------------------------------------- corrupted weights
@pytest.mark.parametrize("node,kind,name", [
    ("LLMAssistLoadCaptioner", "LLM", "tiny-blip"),
    ("LLMAssistLoadLanguageModel", "LLM", "tiny-qwen2-chat"),
    ("LLMAssistLoadImageEncoder", "clip_vision", "tiny-clip"),
    ("LLMAssistLoadPipeline", "diffusers", "tiny-sd15"),
    ("LLMAssistLoadPipeline", "checkpoints", "tiny-sd15.safetensors"),
])
@pytest.mark.parametrize("damage", ["truncate", "garbage-header"])
def test_corrupted_safetensors_is_a_clear_error_naming_the_file(node, kind, name, damage, tiny_models, tmp_path):
    root = tmp_path / "models"
    (root / kind).mkdir(parents=True)
    src = tiny_models / kind / name
    dst = root / kind / f"broken-{name}"
    if src.is_dir():
        shutil.copytree(src, dst)
        weights = sorted(dst.rglob("*.safetensors"), key=lambda p: -p.stat().st_size)[0]
    else:
        shutil.copy(src, dst)
        weights = dst
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\xff" * 8 + b"not json" * 10)
    previous = host.set_models_root(root)
    try:
        if node == "LLMAssistLoadPipeline":
            call = dict(model=dst.name, scheduler="as saved", device="cpu", dtype="fp32", keep_loaded=False)
            if kind == "checkpoints":
                shutil.copytree(tiny_models / "diffusers" / "tiny-sd15", root / "diffusers" / "tiny-sd15")
                call["config"] = "tiny-sd15"
        else:
            call = dict(model=dst.name, device="cpu", dtype="fp32", quantization="none", attention="auto",
                        trust_remote_code=False, allow_download=False, keep_loaded=False)
        with pytest.raises(ValueError) as info:
            _node(node)(**call)
    finally:
        host.set_models_root(previous)
    text = str(info.value)
    assert dst.name in text or weights.name in text, text
    assert "corrupt" in text.lower() or "truncat" in text.lower() or "download it again" in text.lower(), text
