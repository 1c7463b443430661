"""The offline tiny models: layout, determinism, and reloading through the public APIs users hit."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from llm_assist.core import tiny_models as tm

LLM_DIRS = ("tiny-blip", "tiny-vit-gpt2", "tiny-qwen2-chat", "tiny-gpt2")


def _image(color=(200, 30, 40)):
    return Image.new("RGB", (64, 64), color)


@pytest.fixture(scope="module")
def sd_reference(tiny_models):
    """A 2-step 64 px text2img image (and the pipeline) from the diffusers folder."""
    from diffusers import AutoPipelineForText2Image

    pipe = AutoPipelineForText2Image.from_pretrained(tiny_models / "diffusers" / "tiny-sd15")
    pipe.set_progress_bar_config(disable=True)
    return pipe, _run_sd(pipe)


def _run_sd(pipe, **kw):
    out = pipe("a cat on a table", num_inference_steps=2, height=64, width=64, output_type="np",
               generator=torch.Generator().manual_seed(0), **kw)
    return out.images


def test_layout(tiny_models):
    for name in LLM_DIRS:
        assert (tiny_models / "LLM" / name / "model.safetensors").is_file()
        assert (tiny_models / "LLM" / name / "config.json").is_file()
    from transformers import AutoTokenizer

    # (transformers 5 writes chat_template.jinja, 4.x puts it in tokenizer_config.json)
    assert AutoTokenizer.from_pretrained(tiny_models / "LLM" / "tiny-qwen2-chat").chat_template
    assert not AutoTokenizer.from_pretrained(tiny_models / "LLM" / "tiny-gpt2").chat_template
    for folder in (tiny_models / "clip_vision" / "tiny-clip", tiny_models / "diffusers" / "tiny-sd15" / "tokenizer"):
        assert (folder / "vocab.json").is_file()
        assert (folder / "merges.txt").read_text(encoding="utf-8").startswith("#version: 0.2\n")
    for name in ("tiny-sd15", "tiny-sd15-inpaint"):
        assert (tiny_models / "diffusers" / name / "model_index.json").is_file()
    assert (tiny_models / "vae_approx" / "tiny-taesd" / "config.json").is_file()
    assert (tiny_models / "checkpoints" / "tiny-sd15.safetensors").is_file()
    assert (tiny_models / "checkpoints" / "tiny-sd15-inpainting.safetensors").is_file()
    for repo in (tm.SD_REPO, tm.SD_INPAINT_REPO):
        cache = tiny_models / "hf-cache" / "hub" / ("models--" + repo.replace("/", "--"))
        commit = (cache / "refs" / "main").read_text(encoding="utf-8")
        assert (cache / "snapshots" / commit / "unet" / "config.json").is_file()
        assert not list((cache / "snapshots").rglob("*.safetensors")), "the cache holds configs only"
    assert "random-weight" in (tiny_models / "README.txt").read_text(encoding="utf-8").lower()
    from llm_assist.core.tiny_families import missing_class

    for name in tm.FAMILY_PARTS:  # one tiny pipeline per diffusion family the installed diffusers has
        built = (tiny_models / "diffusers" / name / "model_index.json").is_file()
        assert built != bool(missing_class(name)), name
    total = sum(p.stat().st_size for p in tiny_models.rglob("*") if p.is_file())
    assert total < 64 * 2**20


def test_byte_identical_across_processes(tiny_models, tmp_path):
    # One thread in the child (the parent uses the default): the bytes must not depend on it.
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    code = "import sys; from llm_assist.core.tiny_models import build_tiny_models; build_tiny_models(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "again")], check=True, env=env, timeout=300)
    first, second = tm.tree_digest(tiny_models), tm.tree_digest(tmp_path / "again")
    assert len(second) > 60
    # Compare what the child built (other tests may add files to the shared session folder).
    assert {k: first.get(k) for k in second} == second


def test_only_builds_the_named_parts(tmp_path):
    out = tm.build_tiny_models(tmp_path / "some", only=["tiny-taesd", "checkpoints"])
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["README.txt", "checkpoints/tiny-sd15-inpainting.safetensors",
                     "checkpoints/tiny-sd15.safetensors", "vae_approx/tiny-taesd/config.json",
                     "vae_approx/tiny-taesd/diffusion_pytorch_model.safetensors"]
    with pytest.raises(ValueError, match="tiny-blip"):
        tm.build_tiny_models(tmp_path / "bad", only=["tiny-bilp"])


def test_blip_captioner(tiny_models):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = tiny_models / "LLM" / "tiny-blip"
    model, processor = AutoModelForImageTextToText.from_pretrained(folder), AutoProcessor.from_pretrained(folder)
    assert type(model).__name__ == "BlipForConditionalGeneration"
    assert type(processor).__name__ == "BlipProcessor"
    tok = processor.tokenizer
    assert model.config.text_config.bos_token_id == tok.convert_tokens_to_ids("[DEC]")
    assert model.config.text_config.sep_token_id == tok.sep_token_id
    assert model.config.text_config.pad_token_id == tok.pad_token_id == 0
    for prompt in (None, "a photo of"):
        text = None if prompt is None else [prompt, prompt]
        inputs = processor(images=[_image(), _image((0, 90, 200))], text=text, return_tensors="pt")
        out = model.generate(**inputs)
        prompt_len = 1 if prompt is None else inputs["input_ids"].shape[1] - 1
        assert out.shape[0] == 2
        assert prompt_len + 4 <= out.shape[1] <= prompt_len + 12  # min_new_tokens / max_new_tokens
        assert all(isinstance(c, str) and c for c in processor.batch_decode(out, skip_special_tokens=True))


def test_vit_gpt2_captioner(tiny_models):
    from transformers import AutoImageProcessor, AutoTokenizer, VisionEncoderDecoderModel

    folder = tiny_models / "LLM" / "tiny-vit-gpt2"
    model = VisionEncoderDecoderModel.from_pretrained(folder)
    pixels = AutoImageProcessor.from_pretrained(folder)(images=[_image()], return_tensors="pt").pixel_values
    assert pixels.shape == (1, 3, 32, 32)
    tok = AutoTokenizer.from_pretrained(folder)
    out = model.generate(pixels)
    assert 1 + 4 <= out.shape[1] <= 1 + 12
    assert out[0, 0].item() == model.config.decoder_start_token_id == tok.eos_token_id
    assert isinstance(tok.decode(out[0], skip_special_tokens=True), str)


def test_qwen2_chat_model(tiny_models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_models / "LLM" / "tiny-qwen2-chat"
    model, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    messages = [{"role": "system", "content": "you are a helpful assistant."},
                {"role": "user", "content": "describe a cat on a table"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_dict=True, return_tensors="pt")
    ids = enc["input_ids"]
    assert ids[0, 0].item() == tok.convert_tokens_to_ids("<|im_start|>")
    decoded = tok.decode(ids[0], skip_special_tokens=True)
    assert "<|im_start|>" not in decoded and "<|im_end|>" not in decoded and "describe a cat" in decoded
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        outs.append(model.generate(**enc, do_sample=True, max_new_tokens=6, min_new_tokens=6))
    assert outs[0].shape == (1, ids.shape[1] + 6)
    assert torch.equal(outs[0], outs[1])


def test_gpt2_plain_completion(tiny_models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_models / "LLM" / "tiny-gpt2"
    model, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    assert tok.chat_template is None
    enc = tok("a photo of a cat", return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=5, min_new_tokens=5)
    assert out.shape == (1, enc["input_ids"].shape[1] + 5)


def test_clip_model_and_classic_tokenizer_files(tiny_models, tmp_path):
    from transformers import AutoProcessor, CLIPModel, CLIPTokenizer

    folder = tiny_models / "clip_vision" / "tiny-clip"
    model, processor = CLIPModel.from_pretrained(folder), AutoProcessor.from_pretrained(folder)
    inputs = processor(text=["a cat", "a dog on the grass"], images=[_image()], return_tensors="pt", padding=True)
    out = model(**inputs)
    assert out.image_embeds.shape == (1, 16) and out.text_embeds.shape == (2, 16)
    assert model.config.vision_config.hidden_size == 32
    classic = tmp_path / "classic"
    classic.mkdir()
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):  # no tokenizer.json: the classic files
        (classic / name).write_bytes((folder / name).read_bytes())
    slow = CLIPTokenizer.from_pretrained(classic)
    text = "A photo of a Cat, at night!"
    assert slow(text)["input_ids"] == processor.tokenizer(text)["input_ids"]


def test_sd_text2img_and_latents(tiny_models, sd_reference):
    pipe, image = sd_reference
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert type(pipe.scheduler).__name__ == "EulerDiscreteScheduler"
    assert pipe.vae_scale_factor == 8
    assert image.shape == (1, 64, 64, 3) and 0.0 <= image.min() and image.max() <= 1.0
    latents = pipe("x", num_inference_steps=1, output_type="latent",
                   generator=torch.Generator().manual_seed(0)).images
    assert latents.shape == (1, 4, 8, 8)
    embeds, _ = pipe.encode_prompt("a cat", "cpu", 1, False)
    assert embeds.shape == (1, 77, 32)


def test_sd_inpaint_pipeline(tiny_models):
    from diffusers import AutoPipelineForInpainting

    pipe = AutoPipelineForInpainting.from_pretrained(tiny_models / "diffusers" / "tiny-sd15-inpaint")
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe).__name__ == "StableDiffusionInpaintPipeline" and pipe.unet.config.in_channels == 9
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    out = pipe("a fox", image=_image(), mask_image=mask, num_inference_steps=2, output_type="np",
               generator=torch.Generator().manual_seed(0)).images
    assert out.shape == (1, 64, 64, 3)


def test_single_file_with_config_matches_diffusers_folder(tiny_models, sd_reference):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_single_file(tiny_models / "checkpoints" / "tiny-sd15.safetensors",
                                                    config=str(tiny_models / "diffusers" / "tiny-sd15"))
    pipe.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(_run_sd(pipe), sd_reference[1])


def test_single_file_without_config_uses_the_hf_cache(tiny_models, sd_reference, monkeypatch):
    import huggingface_hub
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

    cache = str(tiny_models / "hf-cache" / "hub")
    pipe = StableDiffusionPipeline.from_single_file(tiny_models / "checkpoints" / "tiny-sd15.safetensors",
                                                    cache_dir=cache)
    pipe.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(_run_sd(pipe), sd_reference[1])
    # The plain user call, with the hub cache pointed at the snapshots (what HF_HUB_CACHE does).
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", cache)
    inpaint = StableDiffusionInpaintPipeline.from_single_file(
        tiny_models / "checkpoints" / "tiny-sd15-inpainting.safetensors")
    assert inpaint.unet.config.in_channels == 9
    assert type(inpaint.scheduler).__name__ == "EulerDiscreteScheduler"


def test_ldm_checkpoint_round_trips_through_diffusers_converters(tiny_models, sd_reference):
    from diffusers.loaders.single_file_utils import (convert_ldm_clip_checkpoint, convert_ldm_unet_checkpoint,
                                                     convert_ldm_vae_checkpoint, infer_diffusers_model_type)
    from safetensors.torch import load_file

    pipe = sd_reference[0]
    for file, model_type in (("tiny-sd15.safetensors", "v1"), ("tiny-sd15-inpainting.safetensors", "inpainting")):
        ckpt = load_file(tiny_models / "checkpoints" / file)
        assert infer_diffusers_model_type(ckpt) == model_type
        prefixes = {k.split(".")[0] for k in ckpt}
        assert prefixes == {"model", "first_stage_model", "cond_stage_model"}
    ckpt = load_file(tiny_models / "checkpoints" / "tiny-sd15.safetensors")
    assert ckpt["first_stage_model.encoder.mid.attn_1.q.weight"].ndim == 4  # 1x1 conv, as in LDM files
    for converted, module in ((convert_ldm_unet_checkpoint(ckpt, dict(pipe.unet.config)), pipe.unet),
                              (convert_ldm_vae_checkpoint(ckpt, dict(pipe.vae.config)), pipe.vae),
                              (convert_ldm_clip_checkpoint(ckpt), pipe.text_encoder)):
        expected = {k.removeprefix("text_model."): v for k, v in module.state_dict().items()}
        got = {k.removeprefix("text_model."): v for k, v in converted.items()}
        assert sorted(got) == sorted(expected)
        assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_taesd(tiny_models):
    from diffusers import AutoencoderTiny

    vae = AutoencoderTiny.from_pretrained(tiny_models / "vae_approx" / "tiny-taesd")
    with torch.no_grad():
        latents = vae.encode(torch.rand(1, 3, 64, 64) * 2 - 1).latents
        assert latents.shape == (1, 4, 8, 8)
        assert vae.decode(latents).sample.shape == (1, 3, 64, 64)


def test_corpus_and_tokenizers_are_deterministic():
    assert 300 <= len(tm.corpus()) <= 1000
    assert len(set(tm.corpus())) > 300
    vocab = tm.clip_tokenizer().get_vocab()
    assert vocab["!"] == 0 and vocab["!</w>"] == 256 and max(vocab.values()) == len(vocab) - 1
    assert tm.bert_tokenizer().convert_ids_to_tokens(list(range(6))) == [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
