"""Weighted prompt parsing/embeddings, the embedding cache, single-file loading, speed switches."""
from __future__ import annotations

import pytest
import torch

from llm_assist.core.diffusion import prompt_embeds as P
from llm_assist.core.diffusion.loading import load_pipeline
from llm_assist.core.diffusion.run import GenerateRequest, run
from llm_assist.core.diffusion.speed import SpeedOptions


@pytest.fixture()
def sd(models_root):
    return load_pipeline("tiny-sd15")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("a cat", [("a cat", 1.0)]),
        ("a (red:1.5) cat", [("a ", 1.0), ("red", 1.5), (" cat", 1.0)]),
        ("((big))", [("big", 1.21)]),
        ("[small]", [("small", 1 / 1.1)]),
        ("((big:1.5))", [("big", 1.65)]),
        (r"\(literal\) \[x\]", [("(literal) [x]", 1.0)]),
        ("time: noon", [("time: noon", 1.0)]),
        ("(a:0.5), (b)", [("a", 0.5), (", ", 1.0), ("b", 1.1)]),
    ],
)
def test_parse_weighted(text, expected):
    got = P.parse_weighted(text)
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert [w for _, w in got] == pytest.approx([w for _, w in expected])


def test_all_one_weights_equal_encode_prompt(sd):
    pe, npe = P.encode_weighted(sd.pipe, "a cat on a table", "blurry")
    ref_pe, ref_npe = sd.pipe.encode_prompt("a cat on a table", torch.device("cpu"), 1, True, negative_prompt="blurry")
    assert torch.equal(pe, ref_pe) and torch.equal(npe, ref_npe)
    pe1, _ = P.encode_weighted(sd.pipe, "a (cat:1.0) on a table", "")
    assert torch.equal(pe1, ref_pe)


def test_weights_change_only_their_tokens(sd):
    base, _ = P.encode_weighted(sd.pipe, "a cat on a table")
    up, _ = P.encode_weighted(sd.pipe, "a (cat:1.5) on a table")
    assert base.shape == up.shape and not torch.equal(base, up)
    assert torch.allclose(up.mean(), base.mean(), atol=1e-5)  # mean kept
    ids = sd.tokenizer("a cat on a table").input_ids
    cat = ids.index(sd.tokenizer("cat", add_special_tokens=False).input_ids[0])
    ratio = (up[0] / base[0]).mean(-1)
    assert ratio[cat] > ratio[cat + 1] * 1.3


def test_long_prompts_are_chunked_not_truncated(sd):
    long = ", ".join(f"word{i}" for i in range(80))
    assert P.count_tokens(sd.tokenizer, long) > 75
    pe, npe = P.encode_weighted(sd.pipe, long, "blurry")
    assert pe.shape[1] == npe.shape[1] and pe.shape[1] % 77 == 0 and pe.shape[1] >= 154
    images, _ = run(sd, "txt2img", GenerateRequest(positive=long, steps=1, width=64, height=64))
    assert images.shape == (1, 64, 64, 3)


def test_clip_skip_changes_embeddings(sd):
    a, _ = P.encode_weighted(sd.pipe, "a cat")
    b, _ = P.encode_weighted(sd.pipe, "a cat", clip_skip=1)
    assert a.shape == b.shape and not torch.equal(a, b)


def test_embedding_cache_hits(sd):
    cache = P.EmbeddingCache(size=2)
    first = cache.get(sd.pipe, "a cat", "dog")
    again = cache.get(sd.pipe, "a cat", "dog")
    assert again[0] is first[0] and cache.hits == 1 and cache.misses == 1
    cache.get(sd.pipe, "b", "")
    cache.get(sd.pipe, "c", "")
    assert len(cache) == 2
    cache.get(sd.pipe, "a cat", "dog")
    assert cache.misses == 4


@pytest.mark.parametrize("config", ["tiny-sd15", ""])
def test_single_file_offline_both_config_routes(models_root, config):
    handle = load_pipeline("tiny-sd15.safetensors", config=config)
    folder = load_pipeline("tiny-sd15")
    req = GenerateRequest(positive="a cat", steps=2, width=64, height=64)
    assert torch.allclose(run(handle, "txt2img", req)[0], run(folder, "txt2img", req)[0], atol=1e-5)


def test_single_file_inpainting_checkpoint(models_root):
    handle = load_pipeline("tiny-sd15-inpainting.safetensors")
    assert handle.variant == "inpaint"
    image = torch.rand(1, 64, 64, 3)
    mask = torch.zeros(1, 64, 64)
    mask[:, 8:40, 8:40] = 1
    out, _ = run(handle, "inpaint", GenerateRequest(steps=2, strength=1.0), image=image, mask=mask)
    assert out.shape == (1, 64, 64, 3)


def test_single_file_without_config_offline_is_a_clear_error(models_root, tmp_path):
    import shutil

    from llm_assist.core import host

    root = tmp_path / "models"
    (root / "checkpoints").mkdir(parents=True)
    shutil.copy(models_root / "checkpoints" / "tiny-sd15.safetensors", root / "checkpoints")
    host.set_models_root(root)
    with pytest.raises(ValueError, match="choose a diffusers folder of the same family"):
        load_pipeline("tiny-sd15.safetensors")


def test_pickle_checkpoint_refused(models_root):
    (models_root / "checkpoints" / "old.ckpt").write_bytes(b"not really")
    try:
        with pytest.raises(ValueError, match="use a .safetensors file"):
            load_pipeline("old.ckpt")
    finally:
        (models_root / "checkpoints" / "old.ckpt").unlink()


def test_missing_model_and_repo_without_download(models_root):
    with pytest.raises(ValueError, match="allow download"):
        load_pipeline("someone/some-model")


def test_speed_switches_toggle_in_place_without_reload(models_root):
    from llm_assist.core.model_cache import MODEL_CACHE

    req = GenerateRequest(positive="a cat", steps=2, width=64, height=64, batch_size=2)
    off = load_pipeline("tiny-sd15")
    plain, _ = run(off, "txt2img", req)
    loads, unet, vae = MODEL_CACHE.stats().loads, off.pipe.unet, off.pipe.vae
    fast = load_pipeline("tiny-sd15", speed=SpeedOptions(attention_slicing=True, vae_slicing=True, vae_tiling=True,
                                                         channels_last=True))
    # the same cached pipeline and module objects: a switch is set in place, never a second load
    assert fast.pipe is off.pipe and fast.pipe.unet is unet and fast.pipe.vae is vae
    out, _ = run(fast, "txt2img", req)
    assert vae.use_slicing and vae.use_tiling
    assert unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(out, plain, atol=1e-4)
    again, _ = run(off, "txt2img", req)  # switched back off on the same modules
    assert not vae.use_slicing and not vae.use_tiling and unet.conv_in.weight.is_contiguous()
    assert torch.allclose(again, plain, atol=1e-6)
    assert MODEL_CACHE.stats().loads == loads and off.pipe.unet is unet


def test_step_cache_option(models_root):
    pytest.importorskip("DeepCache")
    req = GenerateRequest(positive="a cat", steps=6, width=64, height=64)
    handle = load_pipeline("tiny-sd15", speed=SpeedOptions(step_cache_interval=3))
    plain = load_pipeline("tiny-sd15")
    cached, _ = run(handle, "txt2img", req)
    ref, _ = run(plain, "txt2img", req)
    assert cached.shape == ref.shape and not torch.equal(cached, ref)
    assert torch.equal(run(plain, "txt2img", req)[0], ref)  # the UNet is unwrapped after the call
