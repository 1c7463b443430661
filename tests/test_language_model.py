"""Load Language Model + Expand Prompt: chat and plain LMs, budget, fixed mode, Cancel."""
import pytest

from llm_assist.core import hf_loading, host
from llm_assist.core.language_model import PRESET_NAMES, build_model_input, expand_prompt, generate_text, load_language_model
from llm_assist.core.model_cache import MODEL_CACHE
from llm_assist.core.prompt_builder import estimate_tokens, tokenizer_counter
from llm_assist.core.sockets import Keyword, Keywords
from llm_assist.nodes.prompt import _EXPAND_PRESETS, LLMAssistExpandPrompt, LLMAssistLoadLanguageModel

LOADER_ARGS = dict(device="cpu", dtype="auto", quantization="none", attention="auto", trust_remote_code=False,
                   allow_download=False, keep_loaded=True)


@pytest.fixture()
def chat_lm(models_root):
    return LLMAssistLoadLanguageModel().load("tiny-qwen2-chat", **LOADER_ARGS)[0]


@pytest.fixture()
def plain_lm(models_root):
    return LLMAssistLoadLanguageModel().load("tiny-gpt2", **LOADER_ARGS)[0]


def _expand(lm, mode="generate", fixed_text="", temperature=0.7, seed=1, budget=77, **kw):
    args = dict(mode=mode, preset="sd prompt", custom_instruction="", seed=seed, max_new_tokens=24,
                temperature=temperature, token_budget=budget, fixed_text=fixed_text, language_model=lm)
    args.update(kw)
    return LLMAssistExpandPrompt().expand(**args)


def test_loader_chat_and_plain(chat_lm, plain_lm):
    assert chat_lm.has_chat_template and not plain_lm.has_chat_template
    assert "<|im_start|>" in build_model_input(chat_lm, "Rewrite.", "a dog")
    assert build_model_input(plain_lm, "Rewrite.", "a dog") == "Rewrite.\n\nInput: a dog\nOutput:"
    # the same folder under the same options is the cached object (one hit, no load); other options load anew
    same = hf_loading.LoadOptions(device="cpu", keep_loaded=True)
    before = MODEL_CACHE.stats()
    assert load_language_model("tiny-gpt2", same) is plain_lm
    after = MODEL_CACHE.stats()
    assert (after.hits, after.loads) == (before.hits + 1, before.loads)
    other = load_language_model("tiny-gpt2", hf_loading.LoadOptions(device="cpu", dtype="bf16"))
    assert other is not plain_lm and MODEL_CACHE.stats().loads == before.loads + 1
    assert PRESET_NAMES == _EXPAND_PRESETS


@pytest.mark.parametrize("which", ["chat", "plain"])
def test_expand_is_seeded_clean_and_in_budget(which, chat_lm, plain_lm):
    lm = chat_lm if which == "chat" else plain_lm
    kw = Keywords((Keyword("black dog", 1.0), Keyword("snow", 0.6)), "a black dog in snow")
    # the tiny GPT-2 reads 128 tokens and its tiny BPE spends ~1 token per 2 characters: a short instruction
    short = {} if which == "chat" else {"preset": "custom", "custom_instruction": "Rewrite as a prompt."}
    first = _expand(lm, keywords=kw, text="at night", budget=20, **short)
    again = _expand(lm, keywords=kw, text="at night", budget=20, **short)
    assert first == again and first["ui"]["text"] == [first["result"][0]] and first["result"][1] == ""
    text = first["result"][0]
    assert isinstance(text, str) and text and estimate_tokens(text) <= 20
    assert "<think>" not in text and "<|im_" not in text
    greedy = [_expand(lm, text="a red car", temperature=0.0, seed=s, **short)["result"][0] for s in (1, 2)]
    assert greedy[0] == greedy[1]


def test_budget_with_tokenizer(chat_lm, tiny_models):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models / "diffusers" / "tiny-sd15" / "tokenizer")
    count = tokenizer_counter(tok)
    for budget in (6, 12, 30):
        out = expand_prompt(chat_lm, "a dog on a beach at sunset", max_new_tokens=40, temperature=1.0, seed=3,
                            token_budget=budget, count_tokens=count)
        assert count(out) <= budget


def test_fixed_mode_replays_byte_identical(chat_lm):
    frozen = "  (black dog:1.2), snow,\n\tgolden hour — ünïcode ✓  "
    out = _expand(None, mode="fixed", fixed_text=frozen)
    assert out["result"][0] == frozen and out["result"][0].encode() == frozen.encode()
    generated = _expand(chat_lm, text="a cat")["result"][0]
    assert _expand(chat_lm, mode="fixed", fixed_text=generated)["result"][0] == generated
    with pytest.raises(ValueError, match="fixed_text is empty"):
        _expand(None, mode="fixed", fixed_text="")


def test_clear_errors(chat_lm):
    with pytest.raises(ValueError, match="connect the 'language_model' input"):
        _expand(None, text="a cat")
    with pytest.raises(ValueError, match="text is empty"):
        _expand(chat_lm, text="   ")
    with pytest.raises(ValueError, match="custom_instruction is empty"):
        _expand(chat_lm, text="a cat", preset="custom")
    out = _expand(chat_lm, text="a cat", preset="custom", custom_instruction="Say it in French.")
    assert isinstance(out["result"][0], str)


def test_cancel_mid_expansion_then_next_call_works(chat_lm):
    steps = []

    def listener(current, total):
        steps.append(current)
        if current == 3:
            host.request_interrupt()

    host.add_progress_listener(listener)
    try:
        with pytest.raises(host.Interrupted):
            generate_text(chat_lm, "Rewrite.", "a dog", max_new_tokens=50, temperature=0.0)
    finally:
        host.remove_progress_listener(listener)
    assert 3 <= max(steps) <= 4  # stopped within one token of the Cancel
    assert not host.interrupted()
    out = _expand(chat_lm, text="a dog", temperature=0.0)
    assert isinstance(out["result"][0], str)


def test_not_a_causal_lm_is_a_clear_error(models_root):
    with pytest.raises(ValueError, match="not a causal language model.*Load Captioner"):
        load_language_model("tiny-blip")  # a captioner in models/LLM
    with pytest.raises(ValueError, match="not in models/LLM|not a folder"):
        load_language_model("someone/missing-model")
