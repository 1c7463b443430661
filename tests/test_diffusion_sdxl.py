"""SDXL prompt weighting through prompt embeddings, on the tiny random SDXL pipeline of make-tiny-models."""
from __future__ import annotations

import pytest
import torch

from llm_assist.core import host
from llm_assist.core.diffusion import prompt_embeds as P
from llm_assist.core.diffusion.run import GenerateRequest, run
from llm_assist.nodes.generate import LLMAssistEnhance, LLMAssistGenerate, LLMAssistLoadPipeline

CPU = torch.device("cpu")
PROMPT, NEGATIVE = "a cat on a table", "blurry"


@pytest.fixture()
def sdxl(tiny_models):
    previous = host.set_models_root(tiny_models)  # tiny-sdxl: core/tiny_families.py
    try:
        (handle,) = LLMAssistLoadPipeline().load("tiny-sdxl", "as saved", "cpu", "fp32")
        yield handle
    finally:
        host.set_models_root(previous)


def test_loaded_as_sdxl(sdxl):
    assert type(sdxl.pipe).__name__ == "StableDiffusionXLPipeline" and sdxl.family == "sdxl" and sdxl.variant == "standard"
    assert P.supports_weighted_sdxl(sdxl.pipe) and not P.supports_weighted(sdxl.pipe)


def test_all_one_weights_equal_encode_prompt(sdxl):
    ours = P.encode_weighted_sdxl(sdxl.pipe, PROMPT, NEGATIVE)
    ref = sdxl.pipe.encode_prompt(PROMPT, device=CPU, num_images_per_prompt=1, do_classifier_free_guidance=True,
                                  negative_prompt=NEGATIVE)
    assert ours[0].shape == (1, 77, 64) and ours[2].shape == (1, 32)
    for got, want in zip(ours, ref):
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-6, rtol=0)
    assert not torch.equal(ours[0], ours[1]) and not torch.equal(ours[2], ours[3])
    # explicit weight 1.0 is the same prompt; an empty negative gives zeros (force_zeros_for_empty_prompt)
    ones = P.encode_weighted_sdxl(sdxl.pipe, "a (cat:1.0) on a table", "")
    ref_empty = sdxl.pipe.encode_prompt(PROMPT, device=CPU, num_images_per_prompt=1, do_classifier_free_guidance=True)
    assert sdxl.pipe.config.force_zeros_for_empty_prompt
    for got, want in zip(ones, ref_empty):
        assert torch.allclose(got, want, atol=1e-6, rtol=0)
    assert float(ones[1].abs().max()) == 0.0 and float(ones[3].abs().max()) == 0.0


def test_weight_changes_embeddings_and_image(sdxl):
    base = P.encode_weighted_sdxl(sdxl.pipe, PROMPT, NEGATIVE)
    up = P.encode_weighted_sdxl(sdxl.pipe, "a (cat:1.5) on a table", NEGATIVE)
    assert up[0].shape == base[0].shape and not torch.equal(up[0], base[0])
    assert torch.equal(up[2], base[2])  # pooled: from the unweighted plain text
    assert torch.equal(up[1], base[1]) and torch.equal(up[3], base[3])
    # the weighted token moves in both encoders' halves, the others much less
    ids = sdxl.pipe.tokenizer(PROMPT).input_ids
    cat = ids.index(sdxl.pipe.tokenizer("cat", add_special_tokens=False).input_ids[0])
    for half in (slice(0, 32), slice(32, 64)):
        change = (up[0][0, :, half] - base[0][0, :, half]).abs().mean(-1)
        assert change[cat] > 3 * change[cat + 1]
    plain, _ = LLMAssistGenerate().run(sdxl, 3, 2, 7.0, 64, 64, 1, positive=PROMPT, negative=NEGATIVE)
    weighted, _ = LLMAssistGenerate().run(sdxl, 3, 2, 7.0, 64, 64, 1, positive="a (cat:1.5) on a table", negative=NEGATIVE)
    assert weighted.shape == plain.shape == (1, 64, 64, 3) and torch.isfinite(weighted).all()
    assert not torch.equal(plain, weighted)


def test_generate_equals_raw_diffusers(sdxl):
    ours, seed = LLMAssistGenerate().run(sdxl, 5, 2, 7.0, 64, 64, 1, positive=PROMPT, negative=NEGATIVE)
    raw = sdxl.pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=2, height=64, width=64, guidance_scale=7.0,
                    generator=[torch.Generator().manual_seed(5)], output_type="pt").images
    assert seed == 5 and ours.shape == (1, 64, 64, 3) and torch.isfinite(ours).all()
    assert 0.0 <= float(ours.min()) and float(ours.max()) <= 1.0
    assert torch.allclose(ours, raw.permute(0, 2, 3, 1), atol=1e-6)
    # no negative: diffusers zeroes the unconditional embeddings, and so do we
    ours_empty, _ = LLMAssistGenerate().run(sdxl, 5, 2, 7.0, 64, 64, 1, positive=PROMPT)
    raw_empty = sdxl.pipe(PROMPT, num_inference_steps=2, height=64, width=64, guidance_scale=7.0,
                          generator=[torch.Generator().manual_seed(5)], output_type="pt").images
    assert torch.allclose(ours_empty, raw_empty.permute(0, 2, 3, 1), atol=1e-6)


def test_embedding_cache_hits_on_repeat(sdxl):
    cache = P.EmbeddingCache(size=4)
    first = cache.get_sdxl(sdxl.pipe, "a (cat:1.2)", NEGATIVE)
    again = cache.get_sdxl(sdxl.pipe, "a (cat:1.2)", NEGATIVE)
    assert len(first) == 4 and all(a is b for a, b in zip(first, again))
    assert cache.hits == 1 and cache.misses == 1
    cache.get_sdxl(sdxl.pipe, "a (cat:1.2)", NEGATIVE, clip_skip=1)
    assert cache.misses == 2
    # through the Generate path: the second identical run hits the shared cache
    req = GenerateRequest(positive="a (dog:1.3) in snow", negative=NEGATIVE, seed=1, steps=2, width=64, height=64)
    out1, _ = run(sdxl, "txt2img", req)
    hits = P.EMBEDDING_CACHE.hits
    out2, _ = run(sdxl, "txt2img", req)
    assert P.EMBEDDING_CACHE.hits == hits + 1 and torch.equal(out1, out2)


def test_long_prompt_clip_skip_and_batch_img2img(sdxl):
    long = ", ".join(f"(word{i}:1.1)" if i % 7 == 0 else f"word{i}" for i in range(80))
    pe, npe, pooled, npooled = P.encode_weighted_sdxl(sdxl.pipe, long, NEGATIVE)
    assert pe.shape == npe.shape and pe.shape[1] % 77 == 0 and pe.shape[1] >= 154 and pe.shape[2] == 64
    assert pooled.shape == npooled.shape == (1, 32)
    images, _ = run(sdxl, "txt2img", GenerateRequest(positive=long, steps=1, width=64, height=64))
    assert images.shape == (1, 64, 64, 3) and torch.isfinite(images).all()
    skipped = P.encode_weighted_sdxl(sdxl.pipe, PROMPT, NEGATIVE, clip_skip=1)
    assert not torch.equal(skipped[0], P.encode_weighted_sdxl(sdxl.pipe, PROMPT, NEGATIVE)[0])
    with pytest.raises(ValueError, match="clip_skip is 5"):
        P.encode_weighted_sdxl(sdxl.pipe, PROMPT, NEGATIVE, clip_skip=5)
    # img2img with a batch: the 2-D pooled embeddings are repeated per image like the 3-D ones
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(2))
    out, _ = LLMAssistEnhance().run(sdxl, image, 4, 2, 7.0, 2, 0.6, positive="a (cat:1.4)", negative=NEGATIVE)
    assert out.shape == (2, 64, 64, 3) and torch.isfinite(out).all() and not torch.equal(out[0], out[1])
