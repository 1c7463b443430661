"""Build Prompt: weights in range, must-keep, negative presets, token budget never exceeded."""
import csv
from pathlib import Path

import pytest

from llm_assist.core.prompt_builder import (NEGATIVE_PRESETS, build_prompt, estimate_tokens, fit_text_to_budget,
                                            make_token_counter, score_to_weight, tokenizer_counter)
from llm_assist.core.sockets import Keyword, Keywords
from llm_assist.nodes.prompt import _NEGATIVE_PRESETS, LLMAssistBuildPrompt

CAPTIONS = Path(__file__).resolve().parents[2] / "shared" / "data" / "flickr8k-captions-dev.tsv"
ODD = ["(red dog:1.20), snow", "犬が走る 雪の中で", "xqzvbk qqq zzz", "café über naïve", "1234 5678",
       "İstanbul ÇAĞ", "emoji 🐶🐶 dog", "a\u0301 combining", "   spaced    out   ", "", "!!!???...", "x" * 300]


@pytest.fixture(scope="module")
def tokenizers(tiny_models):
    from transformers import AutoTokenizer

    return {"tiny-clip": AutoTokenizer.from_pretrained(tiny_models / "clip_vision" / "tiny-clip"),
            "tiny-sd15": AutoTokenizer.from_pretrained(tiny_models / "diffusers" / "tiny-sd15" / "tokenizer")}


def _keywords(n=30):
    words = ["dog", "snow", "black dog", "running", "red ball", "field", "tree", "mountain", "sky", "sunset",
             "grass", "lake", "boat", "child", "frisbee", "bicycle", "street", "city", "night", "rain",
             "umbrella", "bench", "park", "flowers", "beach", "wave", "surfboard", "horse", "fence", "barn"]
    return Keywords(tuple(Keyword(w, round(1 - i / n, 3)) for i, w in enumerate(words[:n])), "caption")


def _texts():
    texts = list(ODD)
    if CAPTIONS.exists():
        with open(CAPTIONS, encoding="utf-8") as handle:
            texts += [row["caption"] for _, row in zip(range(400), csv.DictReader(handle, delimiter="\t"))]
    return texts


def test_estimate_is_an_upper_bound_of_the_tiny_clip_tokenizers(tokenizers):
    for name, tok in tokenizers.items():
        count = tokenizer_counter(tok)
        for text in _texts():
            assert estimate_tokens(text) >= count(text), (name, text, estimate_tokens(text), count(text))
    assert estimate_tokens("") == 2 and estimate_tokens("a b") == 4


@pytest.mark.parametrize("tok_name", ["tiny-clip", "tiny-sd15"])
@pytest.mark.parametrize("budget", [8, 20, 40, 77])
@pytest.mark.parametrize("template", ["", "a photo of {keywords}, 35mm film", "oil painting, dramatic light"])
def test_budget_never_exceeded(tokenizers, tok_name, budget, template):
    count = tokenizer_counter(tokenizers[tok_name])
    spec = build_prompt(_keywords(), template=template, negative_preset="anatomy", token_budget=budget,
                        count_tokens=count)
    meta = dict(spec.meta)
    if not meta["over_budget"]:
        assert count(spec.positive_text()) <= budget
        assert count(spec.negative_text()) <= budget
    else:  # only when the template alone is over the budget: every droppable term is gone
        assert not spec.positive and count(template) > budget
    assert meta["token_count"] == count(spec.positive_text())
    kept = {t.text for t in spec.positive}
    assert kept | set(spec.dropped) >= set(_keywords().texts()) - set(spec.must_keep)


def test_lowest_scores_dropped_first_and_must_keep_never(tokenizers):
    count = tokenizer_counter(tokenizers["tiny-clip"])
    spec = build_prompt(_keywords(), must_keep="barn, golden hour", token_budget=30, count_tokens=count)
    texts = [t.text for t in spec.positive]
    assert texts[0] == "golden hour" and "barn" in texts  # barn has the lowest score but is must-keep
    assert count(spec.positive_text()) <= 30
    scores = {k.text: k.score for k in _keywords().items}
    kept = [scores[t] for t in texts if t in scores and t != "barn"]
    assert min(kept) >= max(scores[t] for t in spec.dropped)
    tight = build_prompt(_keywords(), must_keep="barn, golden hour", token_budget=3, count_tokens=count)
    assert [t.text for t in tight.positive] == ["golden hour", "barn"] and dict(tight.meta)["over_budget"]


def test_weights_in_range_and_rendered():
    for lo, hi in [(0.8, 1.3), (1.0, 1.0), (0.5, 2.0)]:
        spec = build_prompt(_keywords(10), min_weight=lo, max_weight=hi, token_budget=0)
        for term in spec.positive:
            assert lo - 1e-9 <= term.weight <= hi + 1e-9
        if lo == hi == 1.0:
            assert "(" not in spec.positive_text()
    spec = build_prompt(Keywords((Keyword("dog", 1.0), Keyword("snow", 0.0), Keyword("sky", 0.5))), token_budget=0)
    assert spec.positive_text() == "(dog:1.3), (snow:0.8), (sky:1.05)"
    assert score_to_weight(0.5, 0.8, 1.3) == 1.05
    with pytest.raises(ValueError, match="swap"):
        build_prompt(_keywords(), min_weight=1.3, max_weight=0.8)


def test_negative_presets_and_template():
    spec = build_prompt(_keywords(2), template="a photo of {keywords}, at dusk", negative="blurry, extra fingers",
                        negative_preset="anatomy", min_weight=1, max_weight=1, token_budget=0)
    assert spec.positive_text() == "a photo of dog, snow, at dusk"
    negatives = [t.text for t in spec.negative]
    assert negatives[:len(NEGATIVE_PRESETS["anatomy"])] == list(NEGATIVE_PRESETS["anatomy"])
    assert negatives.count("extra fingers") == 1 and negatives[-1] == "blurry"
    assert list(NEGATIVE_PRESETS) == _NEGATIVE_PRESETS
    with pytest.raises(ValueError, match="negative_preset"):
        build_prompt(_keywords(), negative_preset="nope")


def test_estimate_used_without_tokenizer_and_deterministic():
    a = build_prompt(_keywords(), token_budget=77)
    b = build_prompt(_keywords(), token_budget=77)
    assert a == b and estimate_tokens(a.positive_text()) <= 77 and dict(a.meta)["counter"] == "estimate"
    assert make_token_counter(None, None)[0] is estimate_tokens


def test_fit_text_to_budget(tokenizers):
    count = tokenizer_counter(tokenizers["tiny-sd15"])
    text = "a majestic black dog, running through fresh snow, golden hour light, 35mm film, highly detailed"
    for budget in (5, 12, 20, 30, 200):
        out = fit_text_to_budget(text, budget, count)
        assert count(out) <= budget or not out
        assert text.startswith(out) and not out.endswith(",")
    assert fit_text_to_budget(text, 0, count) == text
    assert fit_text_to_budget(text, 20, count).count(",") < text.count(",")


def test_node_with_image_encoder_tokenizer(models_root, tokenizers):
    from llm_assist.core.image_encoder import load_image_encoder

    encoder = load_image_encoder("tiny-clip")
    spec, positive, negative, _ = LLMAssistBuildPrompt().build(
        _keywords(), "", "barn", "", "photo defaults", 0.8, 1.3, 40, image_encoder=encoder)
    count = tokenizer_counter(tokenizers["tiny-clip"])
    assert positive == spec.positive_text() and negative == spec.negative_text()
    assert count(positive) <= 40 and "barn" in positive and "tiny-clip" in dict(spec.meta)["counter"]

    class Handle:  # what Load Diffusion Pipeline's handle exposes
        tokenizer = tokenizers["tiny-sd15"]

    _, positive2, _, _ = LLMAssistBuildPrompt().build(_keywords(), "", "", "", "none", 0.8, 1.3, 40, pipeline=Handle())
    assert count(positive2) <= 40


def test_inside_comfyui_counts_with_its_own_clip_tokenizer(tiny_models, tmp_path, monkeypatch):
    import shutil
    import sys
    import types

    from llm_assist.core import prompt_builder

    comfy_dir = tmp_path / "comfy"
    (comfy_dir / "sd1_tokenizer").mkdir(parents=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(tiny_models / "clip_vision" / "tiny-clip" / name, comfy_dir / "sd1_tokenizer" / name)
    fake = types.ModuleType("comfy")  # like ComfyUI's: a namespace package, folder in __path__, no __file__
    fake.__path__ = [str(comfy_dir)]
    monkeypatch.setitem(sys.modules, "comfy", fake)
    monkeypatch.setattr(prompt_builder, "_COMFY_TOKENIZER", [])
    count, label = prompt_builder.make_token_counter(None, None)
    assert label == "ComfyUI's SD1 CLIP tokenizer"
    from transformers import CLIPTokenizer

    reference = CLIPTokenizer.from_pretrained(str(tiny_models / "clip_vision" / "tiny-clip"))
    text = "a photo of (dog:1.2), snow, mountains at night"
    assert count(text) <= prompt_builder.estimate_tokens(text)
    assert count("a photo of a dog") == len(reference("a photo of a dog").input_ids)
