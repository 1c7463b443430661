"""Prompt targets: tags unchanged for SD, natural / json renderings, conversion reports, languages, counters."""
import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_assist.core.prompt_builder import build_prompt, build_prompt_for, make_token_counter, report_text
from llm_assist.core.prompt_render import GLUE, JSON_FIELDS, render_json, render_natural
from llm_assist.core.prompt_targets import (Target, convert_weighted, detect_language, effective_budget,
                                            estimate_llm_tokens, resolve_target, token_counter, tokenizer_choices)
from llm_assist.core.sockets import Keyword, Keywords
from llm_assist.core.text_generation import split_thinking
from llm_assist.nodes.prompt import _LANGUAGES, _TARGETS, LLMAssistBuildPrompt

WEIGHT_SYNTAX = re.compile(r"\([^()]*:\s*[+-]?(\d+\.?\d*|\.\d+)\s*\)")
NATURAL = Target("natural", "", "t5", 0, False, True)
JSON = Target("json", "", "mistral", 0, False, False)


def _kw(pairs, caption=""):
    return Keywords(tuple(Keyword(t, s) for t, s in pairs), caption)


DOG = _kw([("black dog", 0.9), ("snow", 0.66), ("red ball", 0.5), ("running", 0.4), ("golden hour", 0.3),
           ("close-up", 0.2), ("pine trees", 0.1)], "a black dog running in the snow with a red ball")


@pytest.fixture(scope="module")
def sd15(tiny_models):
    from llm_assist.core import host
    from llm_assist.core.diffusion.loading import load_pipeline

    previous = host.set_models_root(tiny_models)
    try:
        yield load_pipeline("tiny-sd15")
    finally:
        host.set_models_root(previous)


def _build(**kw):
    args = dict(keywords=DOG, template="", must_keep="", negative="", negative_preset="none", min_weight=0.8,
                max_weight=1.3, token_budget=77)
    args.update(kw)
    return LLMAssistBuildPrompt().build(**args)


# ---------------------------------------------------------------- tags: today's behaviour for SD
def test_choices_match_core():
    from llm_assist.core.prompt_targets import LANGUAGE_CHOICES, TARGET_CHOICES

    assert _TARGETS == list(TARGET_CHOICES) and _LANGUAGES == list(LANGUAGE_CHOICES)
    assert set(GLUE) == set(LANGUAGE_CHOICES) - {"auto"}


@pytest.mark.parametrize("budget", [0, 20, 40, 77])
def test_sd_pipeline_auto_is_exactly_the_old_tags(sd15, budget):
    target = resolve_target("auto", sd15)
    assert (target.target, target.family, target.encoder, target.weighted) == ("tags", "sd1", "clip", True)
    old_count, _ = make_token_counter(sd15)
    count, _ = token_counter(target)
    kwargs = dict(template="a photo of {keywords}, (sharp:1.1)", must_keep="(wet fur:1.2), snow", negative="blurry",
                  negative_preset="photo defaults", token_budget=budget)
    old = build_prompt(DOG, count_tokens=old_count, **kwargs)
    new = build_prompt_for(DOG, target, count_tokens=count, **kwargs)
    assert new.positive_text() == old.positive_text() and new.negative_text() == old.negative_text()
    assert new.dropped == old.dropped and new.target == "tags"
    assert count("x y z") == old_count("x y z")  # the same (CLIP) tokenizer
    spec, positive, negative, report = _build(template=kwargs["template"], must_keep=kwargs["must_keep"],
                                              negative="blurry", negative_preset="photo defaults",
                                              token_budget=budget, pipeline=sd15)
    assert (positive, negative) == (old.positive_text(), old.negative_text())
    assert json.loads(report)["target"] == "tags" and json.loads(report)["family"] == "sd1"


def test_without_pipeline_auto_is_tags_and_by_hand_natural():
    assert resolve_target("auto").target == "tags"
    assert resolve_target("natural").target == "natural" and resolve_target("json").encoder == "t5"
    with pytest.raises(ValueError, match="target must be one of"):
        resolve_target("prose")


def test_unweighted_tags_convert_weights_to_order_and_report():
    target = Target("tags", "flux", "clip", 0, False, False)
    spec = build_prompt_for(DOG, target, must_keep="(wet fur:1.4)", negative="blurry", token_budget=0)
    text = spec.positive_text()
    assert not WEIGHT_SYNTAX.search(text) and text.startswith("wet fur, black dog, snow")
    report = json.loads(report_text(spec))
    assert report["converted"] == ["(wet fur:1.4)"] and any("cannot weight" in n for n in report["notes"])
    assert any("ignores the negative" in n for n in report["notes"])


# ---------------------------------------------------------------- natural / json
def test_natural_reads_subject_first_with_emphasis_tiers():
    text = build_prompt_for(DOG, NATURAL, language="english", token_budget=0).positive_text()
    assert text.startswith("Black dog as the main subject.")
    assert "Prominently featuring" not in text or text.index("Prominently") < text.index("Subtle")
    assert "Subtle hints of close-up and pine trees." in text
    assert not WEIGHT_SYNTAX.search(text) and "(" not in text


def test_weight_syntax_anywhere_is_converted_and_reported():
    spec = build_prompt_for(DOG, NATURAL, template="{keywords}, (masterpiece:1.2), [blurry]",
                            must_keep="(red hat:1.5)", token_budget=0)
    text = spec.positive_text()
    assert text.startswith("Red hat as the main subject.")  # its converted weight 1.5 makes it the subject
    assert not WEIGHT_SYNTAX.search(text) and "[" not in text and text.endswith("Masterpiece, blurry.")
    assert json.loads(report_text(spec))["converted"] == ["(red hat:1.5)", "{keywords}, (masterpiece:1.2), [blurry]"]


def test_json_has_the_five_fields():
    spec = build_prompt_for(DOG, JSON, template="photo, 35mm", token_budget=0)
    data = json.loads(spec.positive_text())
    assert list(data) == list(JSON_FIELDS) and data["subject"] == "black dog"
    assert data["lighting"] == "golden hour" and data["camera"] == "close-up" and "photo, 35mm" in data["style"]
    assert data["scene"].split(", ")[:2] == ["snow", "red ball"]


def test_budget_is_capped_at_the_encoder_length():
    flux_like = Target("natural", "flux", "t5", 512, False, False)
    assert effective_budget(flux_like, 0) == 512 and effective_budget(flux_like, 77) == 77
    assert effective_budget(flux_like, 2000) == 512 and effective_budget(resolve_target("tags"), 0) == 0
    spec = build_prompt_for(DOG, flux_like, token_budget=30, count_tokens=estimate_llm_tokens)
    assert estimate_llm_tokens(spec.positive_text()) <= 30 and spec.dropped


TERM = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=24).filter(
    lambda t: t.strip() and "," not in t and "\n" not in t)
WEIGHTED = st.builds(lambda t, w: f"({t}:{w})", TERM, st.sampled_from(["1.2", "0.8", "1.35", ".9"]))
KEYWORDS = st.lists(st.tuples(st.one_of(TERM, WEIGHTED), st.floats(0, 1)), max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs=KEYWORDS, must=st.lists(st.one_of(TERM, WEIGHTED), max_size=3), budget=st.integers(0, 120),
       which=st.sampled_from(["natural", "json"]), language=st.sampled_from(list(_LANGUAGES)),
       template=st.sampled_from(["", "{keywords}, (sharp focus:1.3)", "a photo, [blurry]", "\\(literal:1.5\\)"]))
def test_natural_and_json_never_weight_syntax_and_respect_budget(pairs, must, budget, which, language, template):
    keywords = Keywords(tuple(Keyword(t, s) for t, s in pairs if t.strip()), "")
    target = Target(which, "", "t5", 0, False, True)
    spec = build_prompt_for(keywords, target, language=language, template=template, must_keep=", ".join(must),
                            token_budget=budget, count_tokens=estimate_llm_tokens)
    text = spec.positive_text()
    assert not WEIGHT_SYNTAX.search(text), text
    if which == "json":
        data = json.loads(text)
        assert list(data) == list(JSON_FIELDS) and all(isinstance(v, str) for v in data.values())
    meta = dict(spec.meta)
    if budget and not must and not template:  # only the bare JSON skeleton may exceed a tiny budget
        assert estimate_llm_tokens(text) <= budget or not spec.positive
    assert meta["over_budget"] == (budget > 0 and estimate_llm_tokens(text) > budget)


# ---------------------------------------------------------------- languages
def test_language_follows_the_caption():
    de = _kw([("schwarzer hund", 0.9), ("schnee", 0.6), ("bäume", 0.1)], "ein schwarzer Hund läuft durch den Schnee")
    text = build_prompt_for(de, NATURAL, token_budget=0).positive_text()
    assert text == "Schwarzer hund als Hauptmotiv. Außerdem zu sehen: schnee. Dezent im Hintergrund: bäume."
    english = build_prompt_for(de, NATURAL, language="english", token_budget=0).positive_text()
    assert english.startswith("Schwarzer hund as the main subject.")  # glue is English, keywords are not translated
    fr = _kw([("chien noir", 0.9), ("neige", 0.6)], "un chien noir court dans la neige")
    assert build_prompt_for(fr, NATURAL, token_budget=0).positive_text().startswith("Chien noir comme sujet principal.")
    assert detect_language("un perro negro corre en la nieve con una pelota") == "spanish"
    assert detect_language("un perro en la nieve") == "neutral"  # as French as Spanish: no glue words


@pytest.mark.parametrize("pairs", [[("黑狗", 0.9), ("雪", 0.5)], [("чёрная собака", 0.9), ("снег", 0.2)],
                                   [("xqzv", 0.9), ("blorp", 0.5)]])
def test_unknown_languages_get_no_glue_words(pairs):
    spec = build_prompt_for(_kw(pairs), NATURAL, token_budget=0)
    text = spec.positive_text()
    assert dict(spec.meta)["language"] == "neutral"
    words = set(re.findall(r"\w+", text.lower()))
    assert words <= {w for t, _ in pairs for w in re.findall(r"\w+", t.lower())}, text
    if pairs[0][0] == "黑狗":
        assert text == "黑狗。雪。"  # ideographic full stops, no spaces


def test_detect_language_english_keywords_without_caption():
    assert detect_language("", ["black dog", "snow", "red ball"]) == "english"
    assert detect_language("", []) == "neutral"


def test_render_natural_rejects_unknown_language():
    with pytest.raises(ValueError, match="language must be one of"):
        render_natural([("dog", 1.0)], "klingon")
    assert render_json([]) == json.dumps({k: "" for k in JSON_FIELDS})


def test_convert_weighted():
    assert convert_weighted("(red hat:1.3)") == ("red hat", 1.3, True)
    assert convert_weighted("a [blurry] sky") == ("a blurry sky", 0.91, True)
    assert convert_weighted("plain words") == ("plain words", 1.0, False)


# ---------------------------------------------------------------- token counters
def test_tokenizer_folder_choice_counts_exactly(models_root):
    from transformers import AutoTokenizer

    choices = tokenizer_choices()
    assert choices[0] == "auto" and "diffusers/tiny-sd15/tokenizer" in choices
    tok = AutoTokenizer.from_pretrained(models_root / "diffusers" / "tiny-sd15" / "tokenizer")
    count, name = token_counter(NATURAL, "diffusers/tiny-sd15/tokenizer")
    assert count("a black dog in snow") == len(tok("a black dog in snow")["input_ids"]) and "tiny-sd15" in name
    for bad in ("diffusers/../../etc/tokenizer", "diffusers/tiny-sd15/unet", "/etc/passwd"):
        with pytest.raises((ValueError, FileNotFoundError)):
            token_counter(NATURAL, bad)
    _, positive, _, report = _build(token_budget=12, target="natural", tokenizer="diffusers/tiny-sd15/tokenizer")
    assert len(tok(positive)["input_ids"]) <= 12 and json.loads(report)["counter"].endswith("tiny-sd15/tokenizer")


def test_estimates_without_any_tokenizer():
    count, name = token_counter(NATURAL)
    assert count is estimate_llm_tokens and "estimate" in name
    assert estimate_llm_tokens("") == 1 and estimate_llm_tokens("abcde") == 3


COMFY = Path(os.environ.get("COMFYUI_DIR", "/opt/comfyui")) / "comfy" / "text_encoders"


@pytest.mark.skipif(not (COMFY / "t5_tokenizer").is_dir(), reason="ComfyUI's bundled T5/Qwen tokenizers not installed")
def test_llm_estimate_ratio_against_real_t5_and_qwen():
    """The documented 0.8-1.9x of the real count, measured on renderings in seven languages."""
    from transformers import AutoTokenizer

    toks = [AutoTokenizer.from_pretrained(COMFY / name) for name in ("t5_tokenizer", "qwen25_tokenizer")]
    sets = {"english": ["black dog", "snow", "red ball", "golden hour", "close-up", "pine trees", "morning fog"],
            "german": ["schwarzer hund", "schnee", "roter ball", "goldene stunde", "nahaufnahme", "holzhütte"],
            "french": ["chien noir", "neige", "balle rouge", "heure dorée", "gros plan", "lac de montagne"],
            "spanish": ["perro negro", "nieve", "pelota roja", "hora dorada", "primer plano", "cabaña de madera"],
            "neutral": ["黑狗", "雪", "红球", "黄金时刻", "特写", "чёрная собака", "снег", "赤いボール"]}
    ratios = []
    for language, terms in sets.items():
        items = [(t, 1.3 - 0.05 * i) for i, t in enumerate(terms)]
        for text in (render_natural(items, language, "a photo"), render_json(items, "photo"), ", ".join(terms)):
            ratios += [estimate_llm_tokens(text) / len(tok(text)["input_ids"]) for tok in toks]
    assert 0.8 <= min(ratios) and max(ratios) <= 2.0, (min(ratios), max(ratios))


# ---------------------------------------------------------------- thinking
@pytest.mark.parametrize("raw, answer, thinking", [
    ("<think>plan it</think>a red fox", "a red fox", "plan it"),
    ("plan it</think>a red fox", "a red fox", "plan it"),  # template put <think> in the prompt
    ("<think>still thinking", "", "still thinking"),
    ("a <think>x</think>red <THINK>y</THINK>fox", "a red fox", "x\n\ny"),
    ("no thoughts here", "no thoughts here", ""),
])
def test_split_thinking(raw, answer, thinking):
    assert split_thinking(raw) == (answer, thinking)


@given(st.lists(st.tuples(st.text(alphabet="ab <>/", max_size=8), st.booleans()), max_size=6))
def test_split_thinking_loses_no_text(parts):
    raw = "".join(f"<think>{t}</think>" if inside else t for t, inside in parts)
    answer, thinking = split_thinking(raw)
    assert "<think>" not in answer.lower() or "</think>" not in answer.lower()
    kept = (answer + thinking).replace(" ", "").replace("\n", "")
    plain = re.sub(r"</?think>", "", raw).replace(" ", "").replace("\n", "")
    assert sorted(kept) == sorted(plain)


# ---------------------------------------------------------------- Expand Prompt: thinking, presets, language
@pytest.fixture()
def scripted_lm(models_root):
    """The tiny chat LM made to write a given text greedily: sequence biases rising with the prefix
    length make each next token of the script win (real generate, decode and cleaning)."""
    from llm_assist.core.language_model import load_language_model

    lm = load_language_model("tiny-qwen2-chat")
    config = lm.model.generation_config
    saved = getattr(config, "sequence_bias", None)

    def script(text):
        ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
        config.sequence_bias = {tuple(ids[:i + 1]): 1000.0 * (i + 1) for i in range(len(ids))}
        return len(ids)

    yield lm, script
    config.sequence_bias = saved


def _expand_node(lm, n, **kw):
    from llm_assist.nodes.prompt import LLMAssistExpandPrompt

    args = dict(mode="generate", preset="auto", custom_instruction="", seed=0, max_new_tokens=n, temperature=0.0,
                token_budget=0, fixed_text="", language_model=lm, text="a red fox")
    args.update(kw)
    return LLMAssistExpandPrompt().expand(**args)


def test_thinking_goes_to_its_own_output_and_never_into_the_prompt(scripted_lm):
    lm, script = scripted_lm
    n = script("<think>the user wants a fox</think>one fox in deep snow")
    out = _expand_node(lm, n)
    prompt, thinking = out["result"]
    assert thinking == "the user wants a fox" and prompt == "one fox in deep snow"
    assert out["ui"]["text"] == [prompt] and "think" not in prompt
    n = script("<think>only thinking, cut off by the token limit")
    prompt, thinking = _expand_node(lm, n)["result"]
    assert thinking == "only thinking, cut off by the token limit" and prompt == "a red fox"  # input returned


def test_expand_converts_weights_for_natural_targets(scripted_lm):
    lm, script = scripted_lm
    n = script("(red fox:1.3) in [deep] snow")
    natural, _ = _expand_node(lm, n, target="natural")["result"]
    assert natural == "red fox in deep snow"
    tags, _ = _expand_node(lm, n, target="tags")["result"]
    assert tags == "(red fox:1.3) in [deep] snow"  # CLIP reads the weights: kept


def test_presets_and_output_language():
    from llm_assist.core.language_model import (OUTPUT_LANGUAGES, PRESET_FOR_TARGET, PRESETS, instruction_for,
                                                language_instruction)
    from llm_assist.nodes.prompt import _OUTPUT_LANGUAGES

    assert list(OUTPUT_LANGUAGES) == _OUTPUT_LANGUAGES
    assert PRESET_FOR_TARGET == {"tags": "sd prompt", "natural": "image paragraph", "json": "image paragraph"}
    assert "camera" in PRESETS["video motion"] and "paragraph" in PRESETS["image paragraph"]
    assert instruction_for("auto") == PRESETS["sd prompt"]
    assert "English" in language_instruction("auto", "t5") and "English" in language_instruction("auto", "clip")
    assert "same language" in language_instruction("auto", "qwen") and "English" in language_instruction("english", "qwen")
    with pytest.raises(ValueError, match="output_language must be one of"):
        language_instruction("klingon")


def test_readme_shows_the_real_renderings():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    flux_tags = Target("tags", "flux", "clip", 0, False, False)
    for target in (resolve_target("tags"), NATURAL, JSON, flux_tags):
        text = build_prompt_for(DOG, target, template="{keywords}, (film grain:1.2)", token_budget=0).positive_text()
        assert f"`{text}`" in readme, text
    de = _kw([("schwarzer hund", 0.9), ("schnee", 0.66), ("roter ball", 0.5), ("kiefern", 0.1)])
    assert f"`{build_prompt_for(de, NATURAL, language='neutral', token_budget=0).positive_text()}`" in readme


# ---------------------------------------------------------------- every tiny family (core/tiny_families.py)
FAMILY_CASES = [  # folder, family, target, tokenizer attribute, encoder length
    ("tiny-flux", "flux", "natural", "tokenizer_2", 512),
    ("tiny-sd3", "sd3", "natural", "tokenizer_3", 256),
    ("tiny-qwen-image", "qwen-image", "natural", "tokenizer", 512),
    ("tiny-z-image", "z-image", "natural", "tokenizer", 512),
    ("tiny-flux2-klein", "flux2", "json", "tokenizer", 512),
    ("tiny-sdxl", "sdxl", "tags", "tokenizer", 0),
]


@pytest.mark.parametrize("folder, family, target, attribute, length", FAMILY_CASES)
def test_each_family_gets_its_target_and_its_tokenizer(models_root, folder, family, target, attribute, length):
    from llm_assist.core.diffusion.loading import load_pipeline

    if not (models_root / "diffusers" / folder).is_dir():
        pytest.skip(f"make-tiny-models built no {folder}")
    handle = load_pipeline(folder)
    resolved = resolve_target("auto", handle)
    assert (resolved.family, resolved.target, resolved.max_tokens) == (family, target, length)
    tokenizer = getattr(handle.pipe, attribute)
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    _, positive, _, report = _build(template="{keywords}, (film grain:1.2)", must_keep="(wet fur:1.3)",
                                    token_budget=0, pipeline=handle)
    data = json.loads(report)
    assert data["target"] == target and data["family"] == family and data["budget"] == length  # 0 = encoder length
    assert data["token_count"] == len(tokenizer(positive)["input_ids"])  # counted with that family's tokenizer
    assert not data["over_budget"]
    if target == "tags":
        assert "(wet fur:1.3)" not in positive and "(black dog:1.25)" in positive  # SDXL weights as before
    else:
        assert not WEIGHT_SYNTAX.search(positive) and data["converted"]
    if target == "json":
        assert list(json.loads(positive)) == list(JSON_FIELDS)
