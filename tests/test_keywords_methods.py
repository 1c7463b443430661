"""Extract Keywords: the four methods, robust LLM-output parsing, odd captions, the node."""
import pytest

from llm_assist.core.keywords import METHODS, extract_keywords, statistical  # noqa: F401 - a real import: an ImportError fails
from llm_assist.core.keywords.candidates import candidate_phrases
from llm_assist.core.keywords.llm import parse_keyword_list
from llm_assist.core.sockets import Features, Keyword, Keywords
from llm_assist.nodes.keywords import LLMAssistExtractKeywords

CAPTION = "A black dog is running through the snow with two red balls ."
ODD_CAPTIONS = ["", "   \n\t ", "犬が雪の中を走っている。", "Ein schwarzer Hund läuft durch den Schnee.",
                "!!! ??? ...", "the of and a", " ".join(["a black dog runs in deep snow near a red barn"] * 1000)]


@pytest.fixture()
def encoder(models_root):
    from llm_assist.core.image_encoder import load_image_encoder

    return load_image_encoder("tiny-clip")


@pytest.fixture()
def features(encoder):
    import torch

    image = torch.linspace(0, 1, 2 * 64 * 64 * 3).reshape(2, 64, 64, 3)
    return Features(encoder.encode_images(image), "tiny-clip")


@pytest.fixture()
def lms(models_root):
    from llm_assist.core.language_model import load_language_model

    return {name: load_language_model(name) for name in ("tiny-qwen2-chat", "tiny-gpt2")}


@pytest.fixture()
def sentence_model(tiny_models, models_root):
    """A tiny BERT sentence-embedding folder in models/text_encoders (random weights)."""
    from transformers import BertConfig, BertModel, BertTokenizer

    from llm_assist.core.tiny_models import make_tokenizer

    folder = tiny_models / "text_encoders" / "tiny-bert"
    if not (folder / "config.json").exists():
        words = sorted(set("a black dog running snow red balls two the with is through barn deep near".split()))
        vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words)}
        tok = make_tokenizer(BertTokenizer, vocab, None, model_max_length=64)  # transformers 4.x and 5
        import torch

        torch.manual_seed(0)
        model = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=37, max_position_embeddings=64))
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
    return "tiny-bert"


@pytest.mark.parametrize("text,expected", [
    ('["black dog", "snow", "running"]', ["black dog", "snow", "running"]),
    ('```json\n["black dog", "snow",]\n```', ["black dog", "snow"]),
    ("Sure! Here are the keywords: ['black dog', 'snow', 'red ball']", ["black dog", "snow", "red ball"]),
    ("black dog, snow, running", ["black dog", "snow", "running"]),
    ("Keywords: Black Dog, Snow.", ["black dog", "snow"]),
    ("- black dog\n- snow\n- running", ["black dog", "snow", "running"]),
    ("1. black dog\n2) snow\n3. red ball", ["black dog", "snow", "red ball"]),
    ('{"keywords": ["dog", "snow"]}', ["dog", "snow"]),
    ('[{"keyword": "dog", "score": 0.9}, {"text": "snow"}]', ["dog", "snow"]),
    ('[["dog", 0.9], ["snow", 0.5]]', ["dog", "snow"]),
    ('["dog", "snow"', ["dog", "snow"]),
    ('<think>hmm, ["cat"]</think>["dog", "dog", "snow"]', ["dog", "snow"]),
    ('["dog", "a very long phrase of many words here", "snow"]', ["dog", "snow"]),
    ('["dog", 42, null, "snow"]', ["dog", "snow"]),
    ("dog", ["dog"]),
])
def test_parser_reads_messy_lists(text, expected):
    assert parse_keyword_list(text, max_words=3) == expected


@pytest.mark.parametrize("text", [
    "", "   ", None, "[]", "```\n```", "!! grass'!? day89!s foarHw", ":::::::::::::::11111111111111111",
    "The picture shows a black dog running happily through the deep white snow.",
    "dog, snow, ###, running", "[[[[", "]]]", "{", '{"a": 1}', "[" * 500 + "]" * 500, "\x00\x01\x02",
    "dog snow running happily barking loudly", "' OR 1=1; --", "__import__('os').system('true')", "x" * 10000,
])
def test_parser_rejects_garbage(text):
    assert parse_keyword_list(text) == []


def test_statistical_deterministic():
    a = extract_keywords(CAPTION, "statistical", top_k=5)
    assert a == extract_keywords(CAPTION, "statistical", top_k=5)
    assert 1 <= len(a) <= 5 and all(k.source == "statistical" for k in a.items)
    assert a.caption == CAPTION


def test_embedding_method(encoder, sentence_model):
    from llm_assist.core.keywords.embedding import extract_embedding, load_text_encoder

    a = extract_keywords(CAPTION, "embedding", top_k=4, encoder=encoder)
    assert a == extract_keywords(CAPTION, "embedding", top_k=4, encoder=encoder)
    cands = set(candidate_phrases(CAPTION))
    assert 1 <= len(a) <= 4 and set(a.texts()) <= cands
    assert [k.score for k in a.items] == sorted((k.score for k in a.items), reverse=True)
    assert all(k.source == "embedding" for k in a.items)
    bert = load_text_encoder(sentence_model)
    rows = bert.encode_texts(["black dog", "snow"])
    assert tuple(rows.shape) == (2, 32) and abs(float(rows.norm(dim=-1).mean()) - 1) < 1e-5
    via_cli = extract_embedding([CAPTION, ""], top_k=3, model=sentence_model)
    assert len(via_cli) == 2 and len(via_cli[0]) == 3 and via_cli[1] == []
    assert extract_embedding(CAPTION, top_k=3, model="tiny-clip")[0] == \
        [(k.text, k.score) for k in extract_keywords(CAPTION, "embedding", top_k=3, encoder=encoder, diversity=0.5).items]
    no_diversity = extract_keywords(CAPTION, "embedding", top_k=3, encoder=encoder, diversity=0.0)
    best = max(candidate_phrases(CAPTION), key=lambda p: float(encoder.encode_texts([p])[0] @ encoder.encode_texts([CAPTION])[0]))
    assert no_diversity.texts()[0] == best


def test_image_grounded_method(encoder, features):
    from llm_assist.core.keywords.grounded import rank_grounded

    one = Features(features.embeddings[:1], features.model)
    a = extract_keywords(CAPTION, "image-grounded", top_k=6, encoder=encoder, features=one)
    assert a == extract_keywords(CAPTION, "image-grounded", top_k=6, encoder=encoder, features=one)
    assert 1 <= len(a) <= 6 and all(0 <= k.score <= 1 and k.source == "image-grounded" for k in a.items)
    stat = {p: s for p, s in [("dog", 1.0), ("snow", 0.7), ("red balls", 0.4)]}
    text_only = rank_grounded(CAPTION, one.embeddings[0], encoder, stat, top_k=3, image_weight=0.0)
    assert [p for p, _ in text_only] == ["dog", "snow", "red balls"]  # no image weight = statistical order
    with pytest.raises(ValueError, match="one caption per image"):
        extract_keywords(CAPTION, "image-grounded", encoder=encoder, features=features)
    with pytest.raises(ValueError, match="same image encoder"):
        extract_keywords(CAPTION, "image-grounded", encoder=encoder, features=Features(one.embeddings[:, :8], "x"))


def test_llm_method_falls_back_on_garbage(lms):
    for lm in lms.values():
        a = extract_keywords(CAPTION, "llm", top_k=5, language_model=lm)
        assert a.items and all(k.source == "statistical-fallback" for k in a.items)
        assert a.texts() == extract_keywords(CAPTION, "statistical", top_k=5).texts()


def test_llm_method_uses_a_good_answer(lms, monkeypatch):
    from llm_assist.core.keywords import llm

    def answer(*args, **kwargs):
        return '```json\n["Black dog", "snow", "red balls",]\n```'

    monkeypatch.setattr("llm_assist.core.language_model.generate_text", answer)
    a = extract_keywords(CAPTION, "llm", top_k=2, language_model=lms["tiny-gpt2"])
    assert a.texts() == ["black dog", "snow"] and a.items[0].score == 1.0
    assert all(k.source == "llm" for k in a.items)
    assert llm.rank_scores(["a", "b", "c"]) == [("a", 1.0), ("b", 0.75), ("c", 0.5)]


@pytest.mark.parametrize("caption", ODD_CAPTIONS, ids=range(len(ODD_CAPTIONS)))
def test_odd_captions_every_method(caption, encoder, features, lms):
    one = Features(features.embeddings[:1], features.model)
    for method in METHODS:
        kw = extract_keywords(caption, method, top_k=5, encoder=encoder, features=one,
                              language_model=lms["tiny-qwen2-chat"])
        assert isinstance(kw, Keywords) and len(kw) <= 5 and kw.caption == caption
        assert all(isinstance(k, Keyword) and k.text.strip() and 0 <= k.score <= 1 for k in kw.items)
        if not caption.strip():
            assert len(kw) == 0
    long = extract_keywords(ODD_CAPTIONS[-1], "embedding", top_k=3, encoder=encoder)
    assert 1 <= len(long) <= 3


def test_missing_model_inputs_name_the_input(encoder):
    with pytest.raises(ValueError, match="connect the 'image_encoder' input"):
        extract_keywords(CAPTION, "embedding")
    with pytest.raises(ValueError, match="connect the 'features' input"):
        extract_keywords(CAPTION, "image-grounded", encoder=encoder)
    with pytest.raises(ValueError, match="connect the 'language_model' input"):
        extract_keywords(CAPTION, "llm")
    with pytest.raises(ValueError, match="method must be one of"):
        extract_keywords(CAPTION, "magic")
    with pytest.raises(ValueError, match="language must be one of"):
        candidate_phrases(CAPTION, language="klingon")


def test_candidates_options():
    assert "two red balls" in candidate_phrases(CAPTION)
    no_colour = candidate_phrases(CAPTION, keep_colors=False)
    assert not any(w in p.split() for p in no_colour for w in ("red", "black"))
    no_count = candidate_phrases(CAPTION, keep_counts=False)
    assert not any("two" in p.split() for p in no_count)
    assert all(len(p.split()) <= 1 for p in candidate_phrases(CAPTION, max_words=1))
    assert "dog is running" not in candidate_phrases(CAPTION)


def test_node_pairs_captions_with_images(encoder, features):
    node = LLMAssistExtractKeywords()
    common = dict(method=["image-grounded"], top_k=[4], min_score=[0.0], max_words=[3], language=["english"],
                  keep_colors=[True], keep_counts=[True], diversity=[0.5], image_encoder=[encoder])
    caps = [CAPTION, "a red barn under a blue sky"]
    keywords, texts = node.extract(caption=caps, features=[features], **common)
    assert len(keywords) == len(texts) == 2
    one = lambda i: Features(features.embeddings[i:i + 1], "tiny-clip")  # noqa: E731
    for i in range(2):
        assert keywords[i] == extract_keywords(caps[i], "image-grounded", top_k=4, encoder=encoder, features=one(i))
        assert texts[i] == keywords[i].as_string()
    split, _ = node.extract(caption=caps, features=[one(0), one(1)], **common)
    assert split == keywords
    with pytest.raises(ValueError, match="2 images but 3 captions"):
        node.extract(caption=caps + ["x"], features=[features], **common)
    stat, texts = node.extract(caption=["", CAPTION], **{**common, "method": ["statistical"], "image_encoder": [None]})
    assert len(stat[0]) == 0 and texts[0] == "" and len(stat[1]) >= 1
