"""Captioning with the tiny random-weight models: BLIP, ViT-GPT2 and a tiny LLaVA chat VLM."""
import pytest
import torch

from llm_assist.core import captioning as C
from llm_assist.core import host
from llm_assist.core.hf_loading import LoadOptions
from llm_assist.core.model_cache import MODEL_CACHE

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models on a busy 2-core box: one thread avoids OpenMP spin contention (100x slower)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def build_tiny_llava(folder):
    """A tiny LLaVA (CLIP vision tower + Qwen2 LM) with a chat template, random weights."""
    from transformers import (CLIPImageProcessor, GenerationConfig, LlavaConfig, LlavaForConditionalGeneration,
                              LlavaProcessor, Qwen2Tokenizer)

    from llm_assist.core import tiny_models as tm

    merges = list(tm._train_merges(600))
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"]
    tok = tm.make_tokenizer(Qwen2Tokenizer, tm._bpe_vocab(merges, specials), merges, model_max_length=512,
                            eos_token="<|im_end|>", pad_token="<|endoftext|>", additional_special_tokens=specials[1:])
    config = LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                           num_attention_heads=4, image_size=32, patch_size=8, projection_dim=16),
        text_config=dict(model_type="qwen2", vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        image_token_id=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
        image_token_index=tok.convert_tokens_to_ids("<image>"), image_seq_length=16,  # read by transformers < 4.48
        vision_feature_select_strategy="default")
    torch.manual_seed(5)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(bos_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                                               pad_token_id=tok.pad_token_id, min_new_tokens=4, max_new_tokens=12)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=8,
                               vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE,
                               image_token="<image>", num_additional_image_tokens=1)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    return build_tiny_llava(tmp_path_factory.mktemp("vlm") / "tiny-llava")


@pytest.fixture()
def images():
    return torch.rand(3, 64, 64, 3, generator=torch.Generator().manual_seed(0))


def _settings(**kw):
    return C.CaptionSettings(**{"max_new_tokens": 6, **kw})


@pytest.mark.parametrize("name,family", [("tiny-blip", "blip"), ("tiny-vit-gpt2", "ved")])
def test_batch_of_three_gives_three_captions(models_root, images, name, family):
    captioner = C.load_captioner(name)
    assert captioner.family == family
    captions = captioner.caption(images, _settings(batch_size=2))
    assert len(captions) == 3 and all(isinstance(c, str) for c in captions)
    mixed = [images[:1], torch.rand(2, 40, 56, 3)]  # a list of batches with mixed sizes
    assert len(captioner.caption(mixed, _settings())) == 3


def test_chat_vlm_path(llava_dir, images):
    captioner = C.load_captioner_from_source(str(llava_dir))
    assert captioner.family == "chat" and captioner.tokenizer.padding_side == "left"
    captions = captioner.caption(images, _settings(batch_size=3))
    assert len(captions) == 3 and all(isinstance(c, str) and c for c in captions)
    for caption in captions:  # only the new tokens are decoded: no prompt, no role markers
        assert "Describe this image" not in caption and "<|im_start|>" not in caption
    assert captions == captioner.caption(images, _settings(batch_size=1))
    tags = captioner.caption(images[:1], _settings(preset="tags", max_new_tokens=4))
    assert len(tags) == 1


def test_same_seed_same_caption_and_batching_is_exact(models_root, images):
    captioner = C.load_captioner("tiny-blip")
    sampled = _settings(do_sample=True, temperature=1.0, seed=7)
    first = captioner.caption(images, sampled)
    assert first == captioner.caption(images, sampled)
    assert len(captioner.caption(images, _settings(do_sample=True, temperature=1.0, seed=8))) == 3
    greedy = _settings(preset="detailed")
    assert captioner.caption(images, C.with_batch_size(greedy, 3)) == captioner.caption(images, C.with_batch_size(greedy, 1))
    assert len(captioner.caption(images, _settings(num_beams=2))) == 3


def test_blip_prefix_is_not_echoed(models_root, images):
    captioner = C.load_captioner("tiny-blip")
    assert C.instruction_for("blip", _settings()) == C.BLIP_SHORT_PREFIX
    assert C.instruction_for("blip", _settings(preset="tags")) == ""
    assert C.instruction_for("ved", _settings(preset="custom", custom_instruction="x")) == ""
    assert C.instruction_for("blip2", _settings(preset="detailed")).startswith("Question: ")
    for caption in captioner.caption(images, _settings()):
        assert caption and not caption.lower().startswith(C.BLIP_SHORT_PREFIX)
    custom = captioner.caption(images[:1], _settings(preset="custom", custom_instruction="a photo of"))
    assert not custom[0].startswith("a photo of")


def test_cancel_stops_within_a_token_and_model_stays_usable(models_root, images):
    captioner = C.load_captioner("tiny-blip")
    settings = _settings(max_new_tokens=10, batch_size=3)
    expected = captioner.caption(images, settings)
    seen = []

    def listener(current, total):
        seen.append(current)
        if current >= 6:  # 3 images x 2 tokens
            host.request_interrupt()

    host.add_progress_listener(listener)
    try:
        with pytest.raises(host.Interrupted):
            captioner.caption(images, settings)
    finally:
        host.remove_progress_listener(listener)
    assert max(seen) <= 9, seen  # stopped one token after the request, not at max_new_tokens (30)
    assert not host.interrupted()
    assert captioner.caption(images, settings) == expected


def test_int8_dynamic_quantization_runs(models_root, images):
    options = LoadOptions(device="cpu", quantization="int8-dynamic (CPU)")
    captioner = C.load_captioner("tiny-blip", options)
    kinds = {type(m).__module__ for m in captioner.model.modules()}
    assert any("quantized" in k for k in kinds), kinds
    assert len(captioner.caption(images, _settings())) == 3
    assert captioner is not C.load_captioner("tiny-blip")  # a different cache entry


def test_bitsandbytes_on_cpu_is_a_clear_error(models_root):
    with pytest.raises(ValueError, match="CUDA"):
        C.load_captioner("tiny-vit-gpt2", LoadOptions(device="cpu", quantization="bnb-4bit (CUDA)"))


@pytest.mark.parametrize("source,words", [
    ("clip_vision/tiny-clip", ["'clip'", "CLIPModel", "Load Image Encoder"]),
    ("LLM/tiny-qwen2-chat", ["'qwen2'", "Qwen2ForCausalLM", "Load Language Model"]),
    ("diffusers/tiny-sd15", ["no config.json"]),
])
def test_unsupported_folder_names_what_it_found(models_root, source, words):
    with pytest.raises(ValueError) as info:
        C.load_captioner_from_source(str(models_root / source))
    for word in words:
        assert word in str(info.value)


def test_missing_model_and_repo_id_errors(models_root, monkeypatch):
    with pytest.raises(ValueError, match="not a folder"):
        C.load_captioner("no-such-captioner")
    with pytest.raises(ValueError, match="allow download"):
        C.load_captioner("Salesforce/blip-image-captioning-base")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="LLM_ASSIST_ALLOW_DOWNLOAD"):  # the widget alone grants nothing
        LoadOptions(allow_download=True)
    from llm_assist.core import owner

    with owner.override(allow_download=True), pytest.raises(ValueError, match="HF_HUB_OFFLINE"):
        C.load_captioner("Salesforce/blip-image-captioning-base", LoadOptions(allow_download=True))


def test_settings_validation():
    with pytest.raises(ValueError, match="custom instruction is empty"):
        C.CaptionSettings(preset="custom")
    with pytest.raises(ValueError, match="batch_size"):
        C.CaptionSettings(batch_size=0)
    with pytest.raises(ValueError, match="instruction preset"):
        C.CaptionSettings(preset="poem")


def test_cache_and_keep_loaded(models_root):
    a = C.load_captioner("tiny-vit-gpt2")
    assert C.load_captioner("tiny-vit-gpt2") is a
    transient = C.load_captioner("tiny-vit-gpt2", LoadOptions(dtype="bf16", keep_loaded=False))
    assert transient.cache_key in MODEL_CACHE
    C.release(transient)
    assert transient.cache_key not in MODEL_CACHE and a.cache_key in MODEL_CACHE


def test_nodes_end_to_end(models_root, images):
    from llm_assist.nodes.describe import (LLMAssistCaptionImage, LLMAssistEncodeImage, LLMAssistLoadCaptioner,
                                           LLMAssistLoadImageEncoder)

    assert "tiny-blip" in LLMAssistLoadCaptioner.INPUT_TYPES()["required"]["model"][0]
    (captioner,) = LLMAssistLoadCaptioner().load("tiny-blip", device="cpu")
    # INPUT_IS_LIST: every input arrives as a list; a list of 2 batches (3 + 1 images) gives 4 captions
    (captions,) = LLMAssistCaptionImage().caption([captioner], [images, images[:1]], ["short"], [""], [5], [1],
                                                  [False], [0.7], [0.9], [3], [2])
    assert isinstance(captions, list) and len(captions) == 4
    with pytest.raises(ValueError, match="not one of its options"):  # the placeholder when models exist
        LLMAssistLoadCaptioner().load("(no models found)")
    (encoder,) = LLMAssistLoadImageEncoder().load("tiny-clip", device="cpu")
    (features,) = LLMAssistEncodeImage().encode(encoder, images)
    assert tuple(features.embeddings.shape) == (3, 16) and len(features) == 3
    assert torch.allclose(features.embeddings.norm(dim=-1), torch.ones(3), atol=1e-5)
