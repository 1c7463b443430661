"""Edit Keywords: the edit syntax, its errors, and the node."""
import pytest

from llm_assist.core.keywords.edit import EditSyntaxError, apply_edits, parse_edits, report
from llm_assist.core.sockets import Keyword, Keywords
from llm_assist.nodes.keywords import LLMAssistEditKeywords

KW = Keywords((Keyword("black cat", 0.9), Keyword("dog", 0.7), Keyword("snow", 0.4)), "a black cat and a dog in snow")


def test_parse_all_forms():
    edits = parse_edits("-cat, +fox:1.2, at night, cat=>fox, dog:0.5\nbird -> owl:0.9")
    assert [(e.op, e.term, e.new, e.weight) for e in edits] == [
        ("remove", "cat", "", None), ("add", "fox", "", 1.2), ("add", "at night", "", None),
        ("replace", "cat", "fox", None), ("reweight", "dog", "", 0.5), ("replace", "bird", "owl", 0.9)]
    assert [e.position for e in edits][:3] == [1, 7, 17]
    assert parse_edits("") == [] and parse_edits(" , ,\n") == []


def test_example_from_the_issue():
    edited, missing = apply_edits(KW, "-cat, +fox:1.2, at night, dog:0.5")
    assert edited.texts() == ["dog", "snow", "fox", "at night"]
    fox = edited.items[2]
    assert (fox.score, fox.weight, fox.source) == (1.0, 1.2, "edit")
    assert edited.items[0].weight == 0.5 and edited.items[0].score == 0.7
    assert missing == []


def test_replace_keeps_position_and_score_and_matches_words():
    edited, missing = apply_edits(KW, "cat=>fox, SNOW->night sky:1.1")
    assert edited.texts() == ["black fox", "dog", "night sky"]
    assert edited.items[0].score == 0.9 and edited.items[0].source == "edit"
    assert edited.items[2].weight == 1.1 and missing == []
    assert edited.caption == KW.caption


def test_unknown_terms_are_reported_not_dropped():
    edited, missing = apply_edits(KW, "-horse, zebra=>tiger, cow:1.3, dog")
    assert missing == ["horse", "zebra", "cow"]
    assert report(missing) == "not found: horse, zebra, cow"
    assert edited.texts() == KW.texts()  # "dog" already there: nothing added twice
    assert report([]) == ""


def test_replace_into_existing_term_deduplicates():
    edited, _ = apply_edits(KW, "dog=>snow")
    assert edited.texts() == ["black cat", "snow"]


@pytest.mark.parametrize("text,where,fix", [
    ("+", "character 1", "write a word"),
    ("dog, -", "character 6", "write a word"),
    ("dog:abc", "character 1", "decimal weight"),
    ("cat, dog:1:2", "character 6", "one weight"),
    ("-cat:0.5", "character 1", "without"),
    ("cat=>", "character 1", "write a word"),
    ("=>fox", "character 1", "write a word"),
    ("a=>b=>c", "character 1", "replace one term per item"),
    ("  fox:9", "character 3", "between 0 and 5"),
    ("+-fox", "character 1", "one + or -"),
])
def test_syntax_errors_name_position_and_fix(text, where, fix):
    with pytest.raises(EditSyntaxError) as info:
        parse_edits(text)
    message = str(info.value)
    assert where in message and fix in message, message
    assert isinstance(info.value, ValueError)


def test_node_outputs_and_error():
    node = LLMAssistEditKeywords()
    edited, text, rep = node.edit(KW, "cat=>fox, -lion")
    assert text == "black fox, dog, snow" and rep == "not found: lion"
    assert isinstance(edited, Keywords)
    with pytest.raises(ValueError, match="syntax error at character 1"):
        node.edit(KW, "dog:x")
    empty, text, rep = node.edit(Keywords(), "+fox")
    assert text == "fox" and rep == ""


def test_edit_weights_reach_build_prompt():
    from llm_assist.core.prompt_builder import build_prompt

    edited, _ = apply_edits(KW, "+fox:1.2, dog:0.5")
    spec = build_prompt(edited, min_weight=1.0, max_weight=1.0, token_budget=0)
    assert spec.positive_text() == "black cat, (dog:0.5), snow, (fox:1.2)"
