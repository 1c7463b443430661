"""Host adapter fallbacks (no ComfyUI) and the model cache."""
import os
import sys

import pytest

from llm_assist.core import hf_loading, host
from llm_assist.core.model_cache import CacheKey, ModelCache


def test_not_in_comfyui():
    assert not host.in_comfyui()


def test_models_root_env_and_override(tmp_path, monkeypatch):
    previous = host.set_models_root(None)
    try:
        monkeypatch.setenv(host.ENV_MODELS, str(tmp_path))
        assert host.models_root() == tmp_path.resolve()
        other = tmp_path / "other"
        host.set_models_root(other)
        assert host.models_root() == other.resolve()
        assert host.model_folders("LLM") == [other.resolve() / "LLM"]
    finally:
        host.set_models_root(previous)


def test_list_and_resolve_models(tmp_path):
    previous = host.set_models_root(tmp_path)
    try:
        (tmp_path / "LLM" / "a-model").mkdir(parents=True)
        (tmp_path / "LLM" / "a-model" / "config.json").write_text("{}")
        (tmp_path / "LLM" / "org" / "nested").mkdir(parents=True)
        (tmp_path / "LLM" / "org" / "nested" / "config.json").write_text("{}")
        (tmp_path / "LLM" / "not-a-model").mkdir()
        (tmp_path / "checkpoints").mkdir()
        (tmp_path / "checkpoints" / "x.safetensors").write_bytes(b"")
        (tmp_path / "checkpoints" / "y.ckpt").write_bytes(b"")
        assert host.list_models("LLM") == ["a-model", "org/nested"]
        assert host.list_models("checkpoints", want="files") == ["x.safetensors"]
        assert host.resolve_model("LLM", "org/nested") == (tmp_path / "LLM" / "org" / "nested").resolve()
        with pytest.raises(FileNotFoundError, match="not found"):
            host.resolve_model("LLM", "missing")
    finally:
        host.set_models_root(previous)


@pytest.mark.parametrize("name", ["../secret", "/etc", "a/../../b", ""])
def test_resolve_refuses_escapes(tmp_path, name):
    previous = host.set_models_root(tmp_path)
    try:
        with pytest.raises(ValueError):
            host.resolve_model("LLM", name)
    finally:
        host.set_models_root(previous)


def test_resolve_follows_the_owners_symlinks_but_not_escaping_names(tmp_path):
    other_disk = tmp_path / "other-disk"
    (other_disk / "shared" / "model").mkdir(parents=True)
    (tmp_path / "models").mkdir()
    os.symlink(other_disk / "shared", tmp_path / "models" / "LLM")  # the whole kind folder is a link
    os.symlink(other_disk / "shared" / "model", tmp_path / "other-disk" / "shared" / "link")
    previous = host.set_models_root(tmp_path / "models")
    try:
        assert host.resolve_model("LLM", "link") == (other_disk / "shared" / "model").resolve()
        assert host.resolve_model("LLM", "model") == (other_disk / "shared" / "model").resolve()
        for bad in ("../other-disk/shared/model", str(other_disk / "shared" / "model")):
            with pytest.raises(ValueError, match="outside"):
                host.resolve_model("LLM", bad)
    finally:
        host.set_models_root(previous)


def test_interrupt_flag():
    host.check_interrupt()  # nothing pending
    host.request_interrupt()
    assert host.interrupted()
    with pytest.raises(host.Interrupted):
        host.check_interrupt()
    host.check_interrupt()  # cleared after raising


def test_progress_listener():
    seen = []
    listener = lambda current, total: seen.append((current, total))  # noqa: E731
    host.add_progress_listener(listener)
    try:
        bar = host.progress(3)
        bar.update(1)
        bar.update_absolute(3)
    finally:
        host.remove_progress_listener(listener)
    assert seen == [(1, 3), (3, 3)]


def test_device_choice():
    import torch

    assert host.torch_device("cpu") == torch.device("cpu")
    assert host.torch_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="device"):
        host.torch_device("tpu")


def test_cache_loads_once_and_releases():
    cache = ModelCache()
    calls = []

    def loader():
        calls.append(1)
        return object()

    key = CacheKey("x", "/m", "float32", "cpu")
    a = cache.get_or_load(key, loader, keep_loaded=True)
    b = cache.get_or_load(key, loader)  # the cost of a hit is measured in bench/cache_bench.py
    assert a is b and len(calls) == 1 and cache.stats().hits == 1
    cache.release(key)
    assert key in cache  # keep_loaded entries survive release

    temp = CacheKey("x", "/t", "float32", "cpu")
    cache.get_or_load(temp, loader, keep_loaded=False)
    cache.release(temp)
    assert temp not in cache


def test_cache_limit_evicts_oldest():
    import torch

    cache = ModelCache(limit_bytes=3000)
    keys = [CacheKey("m", f"/{i}", "float32", "cpu") for i in range(3)]
    for key in keys:
        cache.get_or_load(key, lambda: torch.nn.Linear(16, 16))  # 272 floats = 1088 bytes
    assert keys[0] not in cache and keys[2] in cache
    assert cache.total_bytes() <= 3000


def test_repo_id_needs_allow_download(tmp_path):
    previous = host.set_models_root(tmp_path)
    try:
        with pytest.raises(ValueError, match="allow download"):
            hf_loading.resolve_source("LLM", "Salesforce/blip-image-captioning-base", allow_download=False)
        with pytest.raises(ValueError, match="HF_HUB_OFFLINE"):
            hf_loading.resolve_source("LLM", "Salesforce/blip-image-captioning-base", allow_download=True)
        with pytest.raises(ValueError, match="not a folder"):
            hf_loading.resolve_source("LLM", "no such thing!", allow_download=True)
    finally:
        host.set_models_root(previous)


def test_pickle_only_folder_refused(tmp_path):
    (tmp_path / "LLM" / "pickled").mkdir(parents=True)
    (tmp_path / "LLM" / "pickled" / "config.json").write_text("{}")
    (tmp_path / "LLM" / "pickled" / "pytorch_model.bin").write_bytes(b"\x80\x04")
    previous = host.set_models_root(tmp_path)
    try:
        with pytest.raises(ValueError, match="pickle"):
            hf_loading.resolve_source("LLM", "pickled", allow_download=False)
    finally:
        host.set_models_root(previous)


def test_offline_env_is_set_for_tests():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    if "huggingface_hub" in sys.modules:
        import huggingface_hub.constants as constants

        assert constants.HF_HUB_OFFLINE


def test_loading_on_an_accelerator_offloads_the_others_first(tmp_path, monkeypatch):
    weights = tmp_path / "m"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"\0" * 1000)
    freed, offloaded = [], []
    monkeypatch.setattr(host, "free_memory", lambda n, device: freed.append(n))
    cache = ModelCache()
    captioner = CacheKey("captioner", "/c", "float16", "cuda")
    cache.get_or_load(captioner, lambda: "captioner", offload=lambda value: offloaded.append(value))
    cache.get_or_load(CacheKey("pipeline", str(weights), "float16", "cuda"), lambda: "pipeline")
    assert offloaded == ["captioner"]
    assert freed[-1] == 1000  # the folder's safetensors bytes
