"""Draw stage on the tiny pipelines: nodes, equality with raw diffusers, derived pipelines, cancel, inpaint."""
from __future__ import annotations

import pytest
import torch

from llm_assist.core import host
from llm_assist.core.diffusion.loading import load_pipeline
from llm_assist.core.diffusion.run import GenerateRequest, run
from llm_assist.core.diffusion.schedulers import SCHEDULERS
from llm_assist.core.model_cache import MODEL_CACHE
from llm_assist.core.sockets import PromptSpec, WeightedTerm
from llm_assist.nodes.generate import LLMAssistEdit, LLMAssistEnhance, LLMAssistGenerate, LLMAssistLoadPipeline, LLMAssistRepair

REQ = GenerateRequest(positive="a cat on a table", negative="blurry", seed=5, steps=2, cfg=7.0, width=64, height=64)


@pytest.fixture()
def sd(models_root):
    (handle,) = LLMAssistLoadPipeline().load("tiny-sd15", "as saved", "cpu", "fp32")
    return handle


@pytest.fixture()
def sd_inpaint(models_root):
    return load_pipeline("tiny-sd15-inpaint")


def _image(b=1, h=64, w=64):
    g = torch.Generator().manual_seed(1)
    return torch.rand(b, h, w, 3, generator=g)


def _mask(h=64, w=64):
    m = torch.zeros(1, h, w)
    m[:, h // 4 : h // 2, w // 4 : w // 2] = 1.0
    return m


def test_generate_node_shape_range_seed(sd):
    images, seed = LLMAssistGenerate().run(sd, 7, 2, 7.0, 64, 64, 2, positive="a cat")
    assert images.shape == (2, 64, 64, 3) and images.dtype == torch.float32 and images.device.type == "cpu"
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0 and seed == 7
    assert not torch.equal(images[0], images[1])
    again, _ = LLMAssistGenerate().run(sd, 7, 2, 7.0, 64, 64, 2, positive="a cat")
    assert torch.equal(images, again)
    # image i of the batch == a batch-1 run with seed + i
    second, _ = LLMAssistGenerate().run(sd, 8, 2, 7.0, 64, 64, 1, positive="a cat")
    assert torch.allclose(second[0], images[1], atol=1e-5)
    other, _ = LLMAssistGenerate().run(sd, 9, 2, 7.0, 64, 64, 1, positive="a cat")
    assert not torch.equal(other[0], images[0])


def test_generate_equals_raw_diffusers(sd):
    ours, _ = run(sd, "txt2img", REQ)
    raw = sd.pipe(REQ.positive, negative_prompt=REQ.negative, num_inference_steps=2, height=64, width=64, guidance_scale=7.0,
                  generator=[torch.Generator().manual_seed(5)], output_type="pt").images
    assert torch.allclose(ours, raw.permute(0, 2, 3, 1), atol=1e-6)


def test_prompt_spec_input_and_weights_change_output(sd):
    spec = PromptSpec(positive=(WeightedTerm("cat", 1.0), WeightedTerm("table", 1.0)), negative=(WeightedTerm("blurry"),))
    plain, _ = LLMAssistGenerate().run(sd, 1, 2, 7.0, 64, 64, 1, prompt=spec)
    typed, _ = LLMAssistGenerate().run(sd, 1, 2, 7.0, 64, 64, 1, positive="cat, table", negative="blurry")
    assert torch.equal(plain, typed)
    heavy = PromptSpec(positive=(WeightedTerm("cat", 1.6), WeightedTerm("table", 1.0)), negative=(WeightedTerm("blurry"),))
    weighted, _ = LLMAssistGenerate().run(sd, 1, 2, 7.0, 64, 64, 1, prompt=heavy)
    assert not torch.equal(plain, weighted)
    assert torch.isfinite(weighted).all()


@pytest.mark.parametrize("positive", ["a photo of (dog:1.3), snow", "(dog:0.5), (cat:1.4), [sky]",
                                      "a photo of (floating:1.13), (drawing:1.08), (mountain:1.05), highly detailed"])
def test_weighted_prompts_give_finite_images(sd, positive):
    # the mean-restoring rescale used to divide by a near-zero mean and turn every pixel to NaN
    image, _ = LLMAssistGenerate().run(sd, 42, 2, 7.0, 64, 64, 1, positive=positive, negative="blurry")
    assert torch.isfinite(image).all() and 0 <= float(image.min()) and float(image.max()) <= 1


def test_enhance_repair_edit_nodes(sd):
    image = _image(2, 48, 40)
    out, _ = LLMAssistEnhance().run(sd, image, 3, 2, 7.0, 1, 0.5, positive="a dog")
    assert out.shape == (2, 48, 40, 3) and 0 <= float(out.min()) and float(out.max()) <= 1
    rep, _ = LLMAssistRepair().run(sd, image, 3, 2, 7.0, 2, 1.0, _mask(48, 40), positive="a dog")
    assert rep.shape == (4, 48, 40, 3)
    edit, _ = LLMAssistEdit().run(sd, image[:1], 3, 2, 7.0, 1, 0.6, positive="a fox at night")
    edit_m, _ = LLMAssistEdit().run(sd, image[:1], 3, 2, 7.0, 1, 1.0, positive="a fox", mask=_mask(48, 40))
    assert edit.shape == edit_m.shape == (1, 48, 40, 3)


def test_derived_pipelines_share_weights_and_never_reload(sd):
    loads = MODEL_CACHE.stats().loads
    t2i, i2i, inp = (sd.pipeline(m) for m in ("txt2img", "img2img", "inpaint"))
    for p in (t2i, i2i, inp):
        assert p.unet is sd.pipe.unet and p.vae is sd.pipe.vae and p.text_encoder is sd.pipe.text_encoder
    run(sd, "txt2img", REQ)
    run(sd, "img2img", REQ, image=_image())
    run(sd, "inpaint", REQ, image=_image(), mask=_mask())
    (again,) = LLMAssistLoadPipeline().load("tiny-sd15", "DDIM", "cpu", "fp32")
    assert again.pipe is sd.pipe and MODEL_CACHE.stats().loads == loads


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_each_scheduler_runs(sd, scheduler):
    images, _ = run(sd.with_scheduler(scheduler), "txt2img", REQ)
    assert images.shape == (1, 64, 64, 3) and torch.isfinite(images).all()


def test_cancel_mid_run_leaves_pipeline_usable(sd):
    clean, _ = run(sd.with_scheduler("DPM++ 2M Karras"), "txt2img", REQ)
    steps = []

    def hook(current, total):
        steps.append(current)
        if current == 1:
            host.request_interrupt()

    host.add_progress_listener(hook)
    try:
        with pytest.raises(host.Interrupted):
            run(sd.with_scheduler("DPM++ 2M Karras"), "txt2img", REQ)
    finally:
        host.remove_progress_listener(hook)
    assert steps == [1]
    after, _ = run(sd.with_scheduler("DPM++ 2M Karras"), "txt2img", REQ)
    assert torch.equal(after, clean)


def test_repair_preserve_unmasked_both_ways(sd, sd_inpaint):
    image, mask = _image(1, 64, 64), _mask()
    keep = mask[0] == 0
    for handle in (sd, sd_inpaint):
        on, _ = run(handle, "inpaint", GenerateRequest(positive="a dog", steps=2, strength=1.0), image=image, mask=mask)
        off, _ = run(handle, "inpaint", GenerateRequest(positive="a dog", steps=2, strength=1.0, preserve_unmasked=False), image=image, mask=mask)
        assert torch.equal(on[0][keep], image[0][keep])
        assert not torch.allclose(off[0][keep], image[0][keep], atol=1e-3)  # VAE round trip changes them
        assert torch.allclose(on[0][~keep], off[0][~keep])
    feathered, _ = run(sd, "inpaint", GenerateRequest(positive="a dog", steps=2, strength=1.0, feather=4), image=image, mask=mask)
    assert torch.equal(feathered[0][keep], image[0][keep])


def test_inpaint_model_all_modes(sd_inpaint):
    assert sd_inpaint.variant == "inpaint" and sd_inpaint.pipe.unet.config.in_channels == 9
    t2i, _ = run(sd_inpaint, "txt2img", REQ)
    i2i, _ = run(sd_inpaint, "img2img", GenerateRequest(steps=2, strength=0.5), image=_image())
    assert t2i.shape == i2i.shape == (1, 64, 64, 3)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(width=500), "width must be a multiple of 8, got 500: use 496 or 504"),
        (dict(height=60), "height must be a multiple of 8, got 60: use 56 or 64"),
        (dict(steps=-1), "steps must be at least 1"),  # 0 = the family's default steps
        (dict(batch_size=0), "batch_size must be at least 1"),
    ],
)
def test_invalid_txt2img_inputs(sd, kwargs, match):
    from dataclasses import replace

    with pytest.raises(ValueError, match=match):
        run(sd, "txt2img", replace(REQ, **kwargs))


def test_invalid_image_inputs(sd):
    with pytest.raises(ValueError, match="strength must be in"):
        run(sd, "img2img", GenerateRequest(steps=2, strength=0.0), image=_image())
    with pytest.raises(ValueError, match="leaves no denoising step"):
        run(sd, "img2img", GenerateRequest(steps=2, strength=0.2), image=_image())
    with pytest.raises(ValueError, match="mask is 32x32 but the image is 64x64"):
        run(sd, "inpaint", GenerateRequest(steps=2), image=_image(), mask=torch.ones(1, 32, 32))
    with pytest.raises(ValueError, match="mask is empty"):
        run(sd, "inpaint", GenerateRequest(steps=2), image=_image(), mask=torch.zeros(1, 64, 64))
    with pytest.raises(ValueError, match="needs an input image"):
        run(sd, "img2img", GenerateRequest(steps=2))


def test_tiny_vae_option_runs(models_root):
    handle = load_pipeline("tiny-sd15", tiny_vae="tiny-taesd", tiny_vae_decode=True)
    fast, _ = run(handle, "txt2img", REQ)
    full, _ = run(load_pipeline("tiny-sd15"), "txt2img", REQ)
    assert fast.shape == full.shape == (1, 64, 64, 3) and not torch.equal(fast, full)
    with pytest.raises(ValueError, match="no tiny VAE is chosen"):
        load_pipeline("tiny-sd15", tiny_vae_decode=True)


def test_nan_guard_redecodes_in_fp32(sd):
    from llm_assist.core.diffusion.run import decode_latents

    import copy
    from types import SimpleNamespace

    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    reference = decode_latents(sd, sd.pipe, latents)
    vae = copy.deepcopy(sd.pipe.vae).to(torch.float16)  # a copy: fp16 casting must not touch the cached weights
    fake = SimpleNamespace(vae=vae, image_processor=sd.pipe.image_processor)

    def poison(module, args, output):
        return torch.full_like(output, float("nan")) if output.dtype == torch.float16 else output

    vae.decoder.register_forward_hook(poison)
    image = decode_latents(sd, fake, latents)
    assert torch.isfinite(image).all() and vae.dtype == torch.float16  # restored after the fp32 re-decode
    assert torch.allclose(image, reference, atol=1e-2)


def test_instruct_pix2pix_edit_uses_image_guidance(models_root):
    (pix2pix,) = LLMAssistLoadPipeline().load("tiny-sd15-pix2pix", "euler", "cpu", "fp32")
    assert pix2pix.variant == "instruct"
    image = _image()
    a, _ = LLMAssistEdit().run(pix2pix, image, 3, 2, 7.0, 1, 0.6, positive="make it night", image_guidance_scale=1.5)
    b, _ = LLMAssistEdit().run(pix2pix, image, 3, 2, 7.0, 1, 0.6, positive="make it night", image_guidance_scale=1.5)
    c, _ = LLMAssistEdit().run(pix2pix, image, 3, 2, 7.0, 1, 0.6, positive="make it night", image_guidance_scale=3.0)
    assert a.shape == (1, 64, 64, 3) and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="InstructPix2Pix"):
        LLMAssistGenerate().run(pix2pix, 1, 2, 7.0, 64, 64, 1, positive="a dog")


def test_a_scheduler_chosen_once_does_not_stick_to_the_cached_pipeline(sd):
    """Two Load Diffusion Pipeline nodes share one cached pipeline: one choosing DPM++ must not
    change what 'as saved' means for the other."""
    before, _ = run(sd, "txt2img", REQ)
    run(sd.with_scheduler("DPM++ 2M Karras"), "txt2img", REQ)
    after, _ = run(sd, "txt2img", REQ)
    assert torch.equal(before, after)
