"""The model-free keyword extractor (core/keywords/statistical.py) and the ``keywords`` CLI."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llm_assist.core.keywords import statistical
from llm_assist.core.keywords.statistical import STOPWORDS, SUPPORTED_LANGUAGES, extract, extract_many

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

CAPTIONS = [
    "A black dog is running in snow .",
    "Three boys walk on rocks along a river .",
    "A girl in a firefighter 's uniform looks back and says something .",
    "A group of people are standing in front of a building",
    "Two dogs play with a red ball on the grass",
]


def _check_ranking(out, top_k=8, max_words=3):
    assert isinstance(out, list) and len(out) <= top_k
    scores = [s for _, s in out]
    assert all(isinstance(p, str) and p.strip() for p, _ in out)
    assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True), scores
    assert all(len(p.split()) <= max_words for p, _ in out)
    assert len({p for p, _ in out}) == len(out), "duplicate phrases"


def test_main_subject_first_and_action_found():
    out = extract("A black dog is running in snow .")
    _check_ranking(out)
    words = [p for p, _ in out]
    assert words[0] == "dog"
    assert "running" in words[:3] and "snow" in words[:3]
    assert any("black" in p for p in words)
    # a partitive head hands the subject role to its complement
    assert extract("A group of people are standing in front of a building")[0][0] == "people"


def test_deterministic_across_calls_and_processes():
    first = extract_many(CAPTIONS)
    assert first == extract_many(CAPTIONS)
    code = ("import json,sys; from llm_assist.core.keywords.statistical import extract_many;"
            "print(json.dumps(extract_many(json.loads(sys.argv[1]))))")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    res = subprocess.run([sys.executable, "-c", code, json.dumps(CAPTIONS)], capture_output=True,
                         text=True, env=env, check=True)
    assert json.loads(res.stdout) == [[list(x) for x in row] for row in first]


@pytest.mark.parametrize("caption", ["", "   ", "\n\t", ".", "!!! ,,, ???", "a the of and"])
def test_empty_and_function_only_captions(caption):
    assert extract(caption) == []


@pytest.mark.parametrize("caption", [
    "Ein schwarzer Hund läuft durch den Schnee",
    "Un chien noir court dans la neige",
    "一只黑色的狗在雪地里奔跑",
    "Собака бежит по снегу",
    "🐶🐶 dog!!! 123 _ -- '' \x00 \ufeff",
    "a" * 5000,
])
def test_any_string_gives_a_valid_ranking(caption):
    for lang in SUPPORTED_LANGUAGES:
        _check_ranking(extract(caption, language=lang))
    assert extract("Ein schwarzer Hund läuft durch den Schnee", language="german")[0][0] != "ein"


def test_very_long_caption():
    caption = " ".join(CAPTIONS * 400)  # about 20,000 words
    out = extract(caption, top_k=20)
    _check_ranking(out, top_k=20)
    assert out[0][0] == "dog"


@pytest.mark.parametrize("top_k", [0, 1, 2, 5])
@pytest.mark.parametrize("max_words", [1, 2, 3])
def test_top_k_and_max_words_respected(top_k, max_words):
    for caption in CAPTIONS:
        out = extract(caption, top_k=top_k, max_words=max_words)
        _check_ranking(out, top_k=max(top_k, 0), max_words=max_words)
        if top_k == 0:
            assert out == []


def test_options_colors_counts_min_score():
    caption = "Two black dogs run on the beach"
    assert any("black" in p for p, _ in extract(caption))
    assert not any("black" in p for p, _ in extract(caption, keep_colors=False))
    assert any("two" in p.split() for p, _ in extract(caption, keep_counts=True, top_k=20))
    assert not any("two" in p.split() for p, _ in extract(caption, keep_counts=False, top_k=20))
    out = extract(caption, min_score=0.5)
    assert out and all(s >= 0.5 for _, s in out)


def test_stopwords_and_language_errors():
    assert {"english", "german", "french", "spanish"} <= set(STOPWORDS) == set(SUPPORTED_LANGUAGES)
    assert all(isinstance(v, frozenset) and len(v) > 50 for v in STOPWORDS.values())
    assert "the" in STOPWORDS["english"] and "der" in STOPWORDS["german"]
    with pytest.raises(ValueError, match="language"):
        extract("a dog", language="klingon")


def test_pure_python_no_heavy_imports():
    code = ("import sys; import llm_assist.core.keywords.statistical as s; s.extract('a dog runs');"
            "bad=[m for m in ('torch','numpy','transformers') if m in sys.modules]; print(bad)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"


def _run_cli(lines, *args):
    return subprocess.run([sys.executable, "-m", "llm_assist", "-q", "keywords", *args],
                          input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60)


def test_cli_stdin_to_json_lines_same_order():
    lines = [CAPTIONS[0], "", "   ", CAPTIONS[1], CAPTIONS[4]]
    res = _run_cli(lines, "--top-k", "3", "--max-words", "2")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == len(lines)
    assert rows[1] == [] and rows[2] == []
    for caption, row in zip(lines, rows):
        expected = extract(caption, top_k=3, max_words=2)
        assert [[p, s] for p, s in expected] == row
    assert rows[0][0][0] == "dog"


def test_cli_rejects_bad_options():
    res = _run_cli(["a dog"], "--top-k", "0")
    assert res.returncode != 0 and "--top-k" in res.stderr


def _load_scorer():
    path = SHARED / "bench" / "keywords_score.py"
    data = SHARED / "data" / "flickr8k-captions-dev.tsv"
    if not path.is_file() or not data.is_file():
        missing = f"shared benchmark data not found under {SHARED} ({path.name}, {data.name})"
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(missing + ": CI always has ../shared, so the quality test must run there")
        pytest.skip(missing)
    spec = importlib.util.spec_from_file_location("keywords_score_for_tests", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, data


def test_missing_quality_data_fails_in_ci_and_skips_elsewhere(monkeypatch, tmp_path):
    monkeypatch.setattr(sys.modules[__name__], "SHARED", tmp_path / "no-shared")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI always has ../shared"):
        _load_scorer()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="not found"):
        _load_scorer()


def test_quality_regression_on_flickr8k_dev():
    ks, data_path = _load_scorer()
    data = ks.load(str(data_path))
    preds = [extract(caption) for _, _, caption, _ in data]
    f1 = ks.score(data, preds, 3)["F1"]
    baseline = ks.score(data, ks.baseline(data, "first"), 3)["F1"]
    # the bar is set with the scorer's Porter stemmer (nltk); its crude fallback scores about 0.015 lower
    bar = 0.65 if ks.STEM("running") == "run" else 0.63
    assert f1 >= bar, f"statistical keywords F1@3 {f1:.4f} fell below {bar} (first-words baseline {baseline:.4f})"
    assert f1 >= baseline + 0.08


def test_weights_are_probabilities():
    assert all(0.0 <= v <= 1.0 for k, v in statistical.WEIGHTS.items() if k not in ("merge", "attach"))
