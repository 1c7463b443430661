"""One memory manager (issue 10): our cached models behave like ComfyUI's loaded models.

Standalone half: the ModelPatcher-compatible wrapper unloads (drops) and reloads weights into
the same module objects, keep_loaded off frees after the node, caches die with their owner,
and captioning / generation never touch torch's global RNG. The ComfyUI half (registration in
current_loaded_models, POST /free, previews) is in test_comfyui_integration.py.
"""
from __future__ import annotations

import ast
import gc
import os
from pathlib import Path

import pytest
import torch

from llm_assist.core import model_cache
from llm_assist.core.captioning import CaptionSettings, load_captioner
from llm_assist.core.diffusion import prompt_embeds as P
from llm_assist.core.diffusion.loading import load_pipeline
from llm_assist.core.diffusion.preview import LATENT_FORMATS, latent_format_name
from llm_assist.core.diffusion.run import GenerateRequest, run
from llm_assist.core.hf_loading import LoadOptions
from llm_assist.core.hosted_model import hosted_of, value_bytes
from llm_assist.core.model_cache import MODEL_CACHE, BoundedDict


def _images(n: int = 3):
    g = torch.Generator().manual_seed(7)
    return torch.rand(n, 32, 32, 3, generator=g)


def test_unloaded_captioner_frees_its_weights_and_reloads_into_the_same_modules(models_root):
    cap = load_captioner("tiny-vit-gpt2")
    model = cap.model
    first = cap.caption(_images())
    hosted = hosted_of(cap)
    assert hosted is not None and hosted.model_size() == value_bytes(cap) > 0
    assert hosted.loaded_size() == hosted.model_size()
    assert hosted.unload() == "dropped"  # on the CPU: the weights go (meta tensors), not just moved
    assert all(p.device.type == "meta" for p in cap.model.parameters())
    assert hosted.loaded_size() == 0 and cap.cache_key not in MODEL_CACHE
    assert cap.caption(_images()) == first  # the next use reloads transparently
    assert cap.model is model and hosted.reloads == 1 and cap.cache_key in MODEL_CACHE
    assert all(p.device.type == "cpu" for p in cap.model.parameters())


def test_unloaded_pipeline_reloads_same_modules_and_forgets_its_embeddings(models_root):
    handle = load_pipeline("tiny-sd15")
    unet, encoder = handle.pipe.unet, handle.pipe.text_encoder
    req = GenerateRequest(positive="a (red:1.2) cat", seed=3, steps=2, width=64, height=64)
    first, _ = run(handle, "txt2img", req)
    assert encoder in P.EMBEDDING_CACHE._owners
    hosted = hosted_of(handle.pipe)
    assert hosted.model_size() == value_bytes(handle.pipe)
    assert hosted.unload() == "dropped"
    assert encoder not in P.EMBEDDING_CACHE._owners  # no embeddings outlive the weights they came from
    again, _ = run(handle, "txt2img", req)
    assert torch.equal(first, again) and handle.pipe.unet is unet and hosted.reloads >= 1


def test_keep_loaded_off_frees_after_the_node_and_reloads_on_next_use(models_root):
    MODEL_CACHE.clear()  # a keep_loaded entry of the same model from another test would win
    cap = load_captioner("tiny-vit-gpt2", LoadOptions(keep_loaded=False))
    model_cache.prepare(cap)
    model_cache.node_finished()  # what every node's guard calls when the node returns
    hosted = hosted_of(cap)
    assert hosted.dropped and cap.cache_key not in MODEL_CACHE
    assert len(cap.caption(_images(1))) == 1 and not hosted.dropped
    model_cache.node_finished()
    assert hosted.dropped


def test_keep_loaded_on_survives_the_node(models_root):
    cap = load_captioner("tiny-vit-gpt2")
    model_cache.prepare(cap)
    model_cache.node_finished()
    assert not hosted_of(cap).dropped and cap.cache_key in MODEL_CACHE


def test_caption_and_generate_leave_the_global_rng_alone(models_root):
    cap = load_captioner("tiny-vit-gpt2")
    handle = load_pipeline("tiny-sd15")
    torch.manual_seed(1234)
    state = torch.random.get_rng_state()
    cap.caption(_images(2), CaptionSettings(do_sample=True, seed=5, max_new_tokens=6, batch_size=2))
    cap.caption(_images(2), CaptionSettings(do_sample=True, num_beams=2, seed=5, max_new_tokens=6))
    run(handle, "txt2img", GenerateRequest(positive="a cat", seed=9, steps=2, width=64, height=64))
    assert torch.equal(torch.random.get_rng_state(), state)


def test_generate_text_leaves_the_global_rng_alone(models_root):
    from llm_assist.core.language_model import generate_text, load_language_model

    lm = load_language_model("tiny-gpt2")
    torch.manual_seed(99)
    state = torch.random.get_rng_state()
    a = generate_text(lm, "Rewrite", "a cat", max_new_tokens=6, temperature=0.9, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert generate_text(lm, "Rewrite", "a cat", max_new_tokens=6, temperature=0.9, seed=4) == a


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_sampled_caption_does_not_depend_on_batch_size(models_root, batch_size):
    cap = load_captioner("tiny-vit-gpt2")
    settings = CaptionSettings(do_sample=True, temperature=1.0, top_p=1.0, seed=11, max_new_tokens=8, batch_size=1)
    one_by_one = cap.caption(_images(3), settings)
    batched = cap.caption(_images(3), CaptionSettings(**{**settings.__dict__, "batch_size": batch_size}))
    assert batched == one_by_one
    other_seed = cap.caption(_images(3), CaptionSettings(**{**settings.__dict__, "seed": 12}))
    assert other_seed != one_by_one  # the seed does matter (8 sampled tokens x 3 images)


def test_prompt_embeddings_die_with_their_pipeline(models_root):
    import diffusers

    pipe = diffusers.StableDiffusionPipeline.from_pretrained(str(models_root / "diffusers" / "tiny-sd15"))
    cache = P.EmbeddingCache(size=2)
    for text in ("a cat", "a dog", "a fox"):
        cache.get(pipe, text)
    assert len(cache) == 2  # bounded per text encoder
    del pipe
    gc.collect()
    assert len(cache) == 0


def test_bounded_dict_keeps_the_most_recent():
    d = BoundedDict(3)
    for i in range(5):
        d[i] = i
    _ = d[2]
    d[5] = 5
    assert list(d) == [4, 2, 5] or set(d) == {2, 4, 5}


def test_latent_formats_for_previews(models_root):
    handle = load_pipeline("tiny-sd15")
    assert latent_format_name(handle.pipe) == "SD15"
    from llm_assist.core.diffusion import families

    assert set(LATENT_FORMATS) <= set(families.FAMILIES)


@pytest.mark.skipif(not os.environ.get("COMFYUI_DIR"), reason="COMFYUI_DIR not set")
def test_latent_format_names_exist_in_comfyui():
    source = Path(os.environ["COMFYUI_DIR"]) / "comfy" / "latent_formats.py"
    classes = {node.name for node in ast.parse(source.read_text()).body if isinstance(node, ast.ClassDef)}
    assert set(LATENT_FORMATS.values()) <= classes


def test_previews_stay_within_their_time_budget():
    from llm_assist.core.diffusion.preview import within_budget

    now = [0.0]
    shown = []

    def slow_decode(latents):  # a decode that costs 0.2 of a 1.0 s step
        now[0] += 0.2
        shown.append(latents)
        return ("JPEG", latents, 512)

    preview = within_budget(slow_decode, budget=0.05, clock=lambda: now[0])
    results = []
    for step in range(100):
        now[0] += 1.0  # one denoising step
        results.append(preview(step))
    spent = 0.2 * len(shown)
    assert shown and spent <= 0.05 * (now[0] - spent) + 0.2  # within budget (one decode of slack)
    assert results[0] is not None and None in results  # the first step previews, later ones are skipped

    cheap = within_budget(lambda latents: ("JPEG", latents, 512), budget=0.05, clock=lambda: now[0])
    assert all(cheap(i) is not None for i in range(20))  # a free decode previews every step
