"""Every diffusion family on its tiny pipeline (core/tiny_families.py): load, Generate equals the raw
diffusers call with the same generator, Enhance/Repair/Edit run or refuse naming what to load."""
from __future__ import annotations

import pytest
import torch

from llm_assist.core.diffusion import families as F
from llm_assist.core.diffusion.loading import load_pipeline
from llm_assist.core.diffusion.run import GenerateRequest, generators, resolve_defaults, run
from llm_assist.core.hf_loading import DependencyTooOld, LoadOptions, version_at_least

POS, NEG, CFG, SEED = "a photo of a cat on a wooden table", "blurry", 2.0, 7
REQ = GenerateRequest(positive=POS, negative=NEG, seed=SEED, steps=2, cfg=CFG, width=64, height=64, strength=0.6)
# tiny folder -> (family, variant, prompt-encoder kind)
TINY = {
    "tiny-sd15": ("sd1", "standard", "clip"),
    "tiny-sd2": ("sd2", "standard", "clip"),
    "tiny-sdxl": ("sdxl", "standard", "clip"),
    "tiny-sd3": ("sd3", "standard", "t5"),
    "tiny-flux": ("flux", "standard", "t5"),
    "tiny-flux-fill": ("flux", "fill", "t5"),
    "tiny-flux-kontext": ("flux", "kontext", "t5"),
    "tiny-flux2-klein": ("flux2", "klein", "qwen"),
    "tiny-qwen-image": ("qwen-image", "standard", "qwen"),
    "tiny-qwen-image-edit": ("qwen-image", "edit", "qwen"),
    "tiny-z-image": ("z-image", "standard", "qwen"),
    "tiny-chroma": ("chroma", "standard", "t5"),
    "tiny-sana": ("sana", "standard", "gemma"),
}
# The raw diffusers call each family's Generate must equal, written out by hand (not via the pack).
RAW = {
    "tiny-sd2": dict(negative_prompt=NEG, guidance_scale=CFG),
    "tiny-sdxl": dict(negative_prompt=NEG, guidance_scale=CFG),
    "tiny-sd3": dict(negative_prompt=NEG, guidance_scale=CFG, max_sequence_length=256),
    "tiny-flux": dict(guidance_scale=CFG, max_sequence_length=512),
    "tiny-flux-fill": dict(guidance_scale=CFG, max_sequence_length=512, image=torch.zeros(1, 3, 64, 64),
                           mask_image=torch.ones(1, 1, 64, 64), strength=1.0),
    "tiny-flux-kontext": dict(guidance_scale=CFG, max_sequence_length=512, max_area=64 * 64, _auto_resize=False),
    "tiny-flux2-klein": dict(guidance_scale=CFG, max_sequence_length=512),
    "tiny-qwen-image": dict(negative_prompt=NEG, true_cfg_scale=CFG, max_sequence_length=512),
    "tiny-z-image": dict(negative_prompt=NEG, guidance_scale=CFG, max_sequence_length=512),
    "tiny-chroma": dict(negative_prompt=NEG, guidance_scale=CFG, max_sequence_length=512),
    "tiny-sana": dict(negative_prompt=NEG, guidance_scale=CFG, max_sequence_length=300, use_resolution_binning=False),
}
# mode -> tiny folders that refuse it, with a word the refusal must contain (what to load instead)
REFUSED = {
    "img2img": {"tiny-sana": "load"},
    "inpaint": {"tiny-sana": "load", "tiny-chroma": "Fill", "tiny-flux-kontext": "Fill"},
}
_HANDLES: dict = {}


def _skip_if_diffusers_lacks(name):
    """A family newer than the installed diffusers (the floor stack): its tiny folder is not built."""
    from llm_assist.core.hf_loading import installed_version
    from llm_assist.core.tiny_families import missing_class

    cls = missing_class(name)
    if cls:
        pytest.skip(f"diffusers {installed_version('diffusers')} has no {cls}: {name} needs a newer diffusers")


@pytest.fixture()
def family(models_root, request):
    name = request.param
    _skip_if_diffusers_lacks(name)
    if name not in _HANDLES:
        _HANDLES[name] = load_pipeline(name, options=LoadOptions(device="cpu", dtype="fp32"))
    return _HANDLES[name]


def _image():
    return torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(1))


def _mask():
    m = torch.zeros(1, 64, 64)
    m[:, 16:48, 8:40] = 1.0
    return m


@pytest.mark.parametrize("family", list(TINY), indirect=True)
def test_load_detects_family_variant_and_tokenizers(family):
    fam, variant, kind = TINY[family.name]
    assert (family.family, family.variant) == (fam, variant)
    assert family.spec.name == fam and family.spec.prompt_encoder.kind in (kind, "mistral")
    found = family.text_tokenizers()
    assert found and found[-1][1] == kind and found[-1][2] is family.prompt_tokenizer
    assert [a for a, *_ in found] == [e.tokenizer for e in family.spec.encoders]
    assert len(family.prompt_tokenizer("a cat")["input_ids"]) > 0


@pytest.mark.parametrize("family", list(RAW), indirect=True)
def test_generate_equals_raw_diffusers(family):
    images, seed = run(family, "txt2img", REQ)
    assert images.shape == (1, 64, 64, 3) and seed == SEED
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    pipe = family.pipe  # the loaded pipeline itself, called the way diffusers documents it
    raw = pipe(prompt=POS, height=64, width=64, num_inference_steps=2, generator=generators(SEED, 1),
               output_type="pt", **RAW[family.name]).images
    torch.testing.assert_close(images, raw.permute(0, 2, 3, 1).float(), atol=1e-5, rtol=1e-4)
    other, _ = run(family, "txt2img", GenerateRequest(**{**REQ.__dict__, "seed": SEED + 1}))
    assert not torch.equal(images, other), "another seed must give another image"


@pytest.mark.parametrize("family", list(RAW), indirect=True)
def test_enhance_repair_edit_run_or_refuse(family):
    image, mask = _image(), _mask()
    for mode, kwargs in (("img2img", {"image": image}), ("inpaint", {"image": image, "mask": mask})):
        word = REFUSED[mode].get(family.name)
        if word is not None:
            with pytest.raises(ValueError, match=rf"(?s){family.name}:.*no {mode}.*{word}"):
                run(family, mode, REQ, **kwargs)
            continue
        out, _ = run(family, mode, REQ, **kwargs)
        assert out.shape == (1, 64, 64, 3) and torch.isfinite(out).all()
        if mode == "inpaint":  # preserve_unmasked: pixels outside the mask are the input's, exactly
            keep = (mask[0] == 0)
            assert torch.equal(out[0][keep], image[0][keep])
            assert not torch.equal(out[0][~keep], image[0][~keep])
    if family.name == "tiny-sana":
        return
    edited, _ = run(family, "edit", REQ, image=image, mask=mask)  # Kontext/FLUX.2: edit all, paste back
    keep = (mask[0] == 0)
    assert torch.equal(edited[0][keep], image[0][keep])


@pytest.mark.slow
@pytest.mark.parametrize("family", ["tiny-qwen-image-edit"], indirect=True)
def test_qwen_image_edit_enhance_and_edit_equal_raw_diffusers(family):
    """Qwen-Image-Edit (loaded with its Qwen2-VL processor, also without torchvision): Enhance and Edit
    give the raw QwenImageEditPipeline call's image for the same generator; Generate refuses naming
    what to load; Repair (and so Edit with a mask) runs QwenImageEditInpaintPipeline on the shared modules.
    Slow for a tiny model: both pipelines VAE-encode the reference at ~1 MP whatever the asked size."""
    import numpy as np
    from PIL import Image

    image, mask = _image(), _mask()
    assert type(family.pipe).__name__ == "QwenImageEditPipeline"
    pil = [Image.fromarray((image[0].numpy() * 255.0).round().clip(0, 255).astype(np.uint8))]
    raw = family.pipe(image=pil, prompt=POS, negative_prompt=NEG, true_cfg_scale=CFG, height=64, width=64,
                      num_inference_steps=2, generator=generators(SEED, 1), max_sequence_length=512,
                      output_type="pt").images.permute(0, 2, 3, 1).float()
    enhanced, seed = run(family, "img2img", REQ, image=image)
    assert enhanced.shape == (1, 64, 64, 3) and seed == SEED
    torch.testing.assert_close(enhanced, raw, atol=1e-5, rtol=1e-4)
    edited, _ = run(family, "edit", REQ, image=image)
    torch.testing.assert_close(edited, raw, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="tiny-qwen-image-edit:.*load Qwen-Image for Generate"):
        run(family, "txt2img", REQ)
    repaired, _ = run(family, "inpaint", REQ, image=image, mask=mask)
    assert repaired.shape == (1, 64, 64, 3) and torch.isfinite(repaired).all()
    keep = (mask[0] == 0)
    assert torch.equal(repaired[0][keep], image[0][keep]) and not torch.equal(repaired[0][~keep], image[0][~keep])


@pytest.mark.parametrize("family", ["tiny-flux"], indirect=True)
def test_resolution_multiple_and_tiny_vae_decode(family):
    with pytest.raises(ValueError, match="width must be a multiple of 16, got 72: use 64 or 80"):
        run(family, "txt2img", GenerateRequest(**{**REQ.__dict__, "width": 72}))
    with pytest.raises(ValueError, match="SD 1.x/2.x/SDXL pipelines only"):
        load_pipeline("tiny-flux", options=LoadOptions(device="cpu", dtype="fp32"), tiny_vae="tiny-taesd",
                      tiny_vae_decode=True)


@pytest.mark.parametrize("family", ["tiny-flux2-klein", "tiny-qwen-image"], indirect=True)
def test_family_defaults(family):
    req = resolve_defaults(family, GenerateRequest(steps=0, cfg=-1.0))
    assert (req.steps, req.cfg) == F.defaults(family.family, family.variant)
    kept = resolve_defaults(family, GenerateRequest(steps=3, cfg=0.0))
    assert (kept.steps, kept.cfg) == (3, 0.0)


def test_route_table_names_real_diffusers_classes():
    import diffusers

    def real(cls):  # checked on the pinned stack; older releases (the floors) lack the newer families' classes
        return hasattr(diffusers, cls) or not version_at_least("diffusers", "0.42.1")

    for name, spec in F.FAMILIES.items():
        assert set(spec.classes) == set(spec.modes), name
        for mode in F.MODES:
            try:
                cls, style = F.route(name, "standard", mode)
            except ValueError as exc:
                assert mode not in spec.modes and "load" in str(exc)
                continue
            assert style in F.CALL_STYLES
            assert cls in (F.SELF, F.AUTO) or real(cls), (name, mode, cls)
    for routes in F.VARIANT_ROUTES.values():
        for cls, style in routes.values():
            assert (cls == F.SELF or real(cls)) and style in F.CALL_STYLES


@pytest.mark.parametrize("class_name,family,variant", [
    ("StableDiffusionXLInpaintPipeline", "sdxl", "standard"), ("StableDiffusion3Pipeline", "sd3", "standard"),
    ("FluxFillPipeline", "flux", "fill"), ("FluxKontextPipeline", "flux", "kontext"),
    ("Flux2Pipeline", "flux2", "standard"), ("Flux2KleinPipeline", "flux2", "klein"),
    ("QwenImageEditPlusPipeline", "qwen-image", "edit"), ("ZImagePipeline", "z-image", "standard"),
    ("ChromaPipeline", "chroma", "standard"), ("SanaPipeline", "sana", "standard"),
    ("StableDiffusionInstructPix2PixPipeline", "sd1", "instruct"), ("PixArtSigmaPipeline", None, "standard"),
])
def test_family_from_class_name(class_name, family, variant):
    assert F.family_from_class_name(class_name) == family
    assert F.variant_from_class_name(class_name) == variant


def test_transformer_single_file_loads_offline_into_its_config_folder(models_root, tmp_path):
    from safetensors.torch import save_file

    _skip_if_diffusers_lacks("tiny-flux")
    folder = models_root / "diffusers" / "tiny-flux"
    ref = _HANDLES.get("tiny-flux") or load_pipeline("tiny-flux", options=LoadOptions(device="cpu", dtype="fp32"))
    state = {k: v.contiguous() for k, v in ref.pipe.transformer.state_dict().items()}
    (models_root / "checkpoints").mkdir(exist_ok=True)
    path = models_root / "checkpoints" / "tiny-flux-transformer.safetensors"
    save_file(state, path)
    try:
        with pytest.raises(ValueError, match="looks like a FLUX.1 checkpoint.*'config'"):
            load_pipeline(path.name, options=LoadOptions(device="cpu", dtype="fp32"))
        if not version_at_least("diffusers", "0.35.0"):  # older releases read only the original layout
            with pytest.raises(DependencyTooOld, match="diffusers' own layout needs diffusers>=0.35.0"):
                load_pipeline(path.name, options=LoadOptions(device="cpu", dtype="fp32"), config=folder.name)
            return
        single = load_pipeline(path.name, options=LoadOptions(device="cpu", dtype="fp32"), config=folder.name)
        assert (single.family, type(single.pipe).__name__) == ("flux", "FluxPipeline")
        a, _ = run(single, "txt2img", REQ)
        b, _ = run(ref, "txt2img", REQ)
        assert torch.equal(a, b)
    finally:
        path.unlink()


@pytest.mark.parametrize("family", ["tiny-flux", "tiny-qwen-image", "tiny-sana"], indirect=True)
def test_cancel_progress_oom_and_scheduler_on_transformer_families(family):
    from llm_assist.core import faults, host

    clean, _ = run(family, "txt2img", REQ)
    steps = []

    def hook(current, total):
        steps.append((current, total))
        if current == 1:
            host.request_interrupt()

    host.add_progress_listener(hook)
    try:
        with pytest.raises(host.Interrupted):
            run(family, "txt2img", REQ)
    finally:
        host.remove_progress_listener(hook)
    assert steps == [(1, 2)]
    after, _ = run(family, "txt2img", REQ)
    assert torch.equal(after, clean), "a cancelled run must leave the pipeline as it was"
    with faults.inject_oom(times=1), pytest.raises(ValueError, match="out of memory.*batch_size"):
        run(family, "txt2img", REQ)
    with pytest.raises(ValueError, match="flow-matching model.*'as saved'"):
        run(family.with_scheduler("DPM++ 2M Karras"), "txt2img", REQ)
