"""The ``llm`` keyword method: ask an LLMA_LANGUAGE_MODEL for a JSON list of key phrases.

Models do not always write clean JSON, so ``parse_keyword_list`` accepts: a JSON list
(strings, or objects with a "keyword"/"text"/"phrase" field), the same inside ```code
fences``` or after a preamble, trailing commas, single quotes, a bare comma- or line-separated
list, and bulleted / numbered lines. What it cannot read as a list of short phrases gives
``[]``, and the method falls back to the statistical extractor (source
"statistical-fallback"); it never raises for bad model output.
"""
from __future__ import annotations

import ast
import json
import logging
import re

log = logging.getLogger(__name__)

INSTRUCTION = (
    "Extract the {top_k} most important visual key phrases from the image caption. Each phrase has "
    "at most {max_words} words. Answer only with a JSON list of strings, most important first, "
    'e.g. ["black dog", "snow", "running"].'
)
MAX_OUTPUT_CHARS = 8000
MAX_CAPTION_WORDS = 120
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*(.*?)(```|$)", re.DOTALL)
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")
_PHRASE = re.compile(r"^[^\W_](?:[\w'’ \-&]*[^\W_])?$", re.UNICODE)
_OBJECT_KEYS = ("keyword", "keywords", "text", "phrase", "term", "name")


def _from_json_like(snippet: str):
    """A Python list from JSON-ish text (trailing commas, single quotes), or None."""
    snippet = snippet.strip()
    for attempt in (snippet, re.sub(r",\s*([\]}])", r"\1", snippet)):
        try:
            return json.loads(attempt)
        except (ValueError, RecursionError):
            pass
        try:
            return ast.literal_eval(attempt)  # single quotes; literals only, never code
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            pass
    return None


def _flatten(value) -> list[str] | None:
    if isinstance(value, dict):
        for key in ("keywords", "key_phrases", "phrases", "tags"):
            if isinstance(value.get(key), list):
                return _flatten(value[key])
        return None
    if not isinstance(value, (list, tuple)):
        return None
    out = []
    for item in value:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            text = next((item[k] for k in _OBJECT_KEYS if isinstance(item.get(k), str)), None)
            if text is not None:
                out.append(text)
        elif isinstance(item, (list, tuple)) and item and isinstance(item[0], str):
            out.append(item[0])  # ["phrase", score] pairs
    return out


def _clean_phrase(text: str) -> str:
    text = _BULLET.sub("", str(text))
    text = text.strip().strip("\"'`“”‘’").strip()
    text = re.sub(r"\s+", " ", text).rstrip(".;:!").strip()
    return text.lower()


def _valid(phrase: str, max_words: int) -> bool:
    return bool(phrase) and len(phrase) <= 60 and len(phrase.split()) <= max_words and bool(_PHRASE.match(phrase))


def parse_keyword_list(text: str, max_words: int = 3) -> list[str]:
    """Phrases from model output (best first, lower-cased, deduplicated); [] when unreadable."""
    if not isinstance(text, str) or not text.strip():
        return []
    text = re.sub(r"<think>.*?(</think>|$)", "", text[:MAX_OUTPUT_CHARS], flags=re.DOTALL | re.IGNORECASE).strip()
    fenced = [m.group(1) for m in _FENCE.finditer(text)]
    sources = fenced + [text]
    raw: list[str] | None = None
    for source in sources:
        for start in [m.start() for m in re.finditer(r"[\[{]", source)][:5]:
            end = source.rfind("]" if source[start] == "[" else "}")
            if end <= start:
                end = len(source)
            value = _from_json_like(source[start:end + 1])
            if value is None and source[start] == "[":  # unterminated list: close it
                value = _from_json_like(source[start:].rstrip().rstrip(",") + "]")
            flat = _flatten(value) if value is not None else None
            if flat:
                raw = flat
                break
        if raw:
            break
    strict = raw is None
    if raw is None:  # a bare comma / line / bullet list: every item must be a short phrase
        body = (fenced[0] if fenced else text).strip()
        head, colon, rest = body.partition(":")
        if colon and "\n" not in head and len(head) <= 60 and rest.strip():
            body = rest.strip()  # "Keywords: a, b, c" / "Here are the key phrases: ..."
        raw = [part for line in body.splitlines() for part in line.split(",") if part.strip()]
        if len(raw) < 2 and len(body.split()) > max_words:
            return []  # one long run of text is prose, not a list
    phrases, seen = [], set()
    for item in raw:
        phrase = _clean_phrase(item)
        if not _valid(phrase, max_words):
            if strict:
                return []  # a bare list with junk in it is not a list
            continue
        if phrase not in seen:
            seen.add(phrase)
            phrases.append(phrase)
    return phrases


def rank_scores(phrases: list[str]) -> list[tuple[str, float]]:
    """Rank-based scores: the first phrase 1.0, then evenly down to 0.5 for the last."""
    n = len(phrases)
    return [(p, round(1.0 - 0.5 * i / max(1, n - 1), 4)) for i, p in enumerate(phrases)]


def extract_llm(
    caption: str,
    language_model,
    *,
    top_k: int = 8,
    max_words: int = 3,
    seed: int = 0,
    max_new_tokens: int = 64,
) -> list[tuple[str, float]]:
    """(phrase, score) from the language model, or [] when its output is not a usable list."""
    from ..context_limits import PromptTooLong
    from ..language_model import generate_text

    instruction = INSTRUCTION.format(top_k=top_k, max_words=max_words)
    words = caption.split()
    if len(words) > MAX_CAPTION_WORDS:  # keep the instruction in the model's context
        caption = " ".join(words[:MAX_CAPTION_WORDS])
    try:
        output = generate_text(language_model, instruction, f"Caption: {caption.strip()}",
                               max_new_tokens=max_new_tokens, temperature=0.0, seed=seed)
    except PromptTooLong as exc:  # a small-context model: the caption's own words are the better source
        log.warning("llm keywords: %s; falling back to statistical", exc)
        return []
    phrases = parse_keyword_list(output, max_words=max_words)[:top_k]
    if not phrases:
        log.info("language model output is not a keyword list (%r); falling back to statistical", output[:120])
    return rank_scores(phrases)
