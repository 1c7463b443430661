"""Model-free keyword extraction for short image captions.

``extract(caption)`` returns ranked key phrases ``[(phrase, score), ...]``, best first, scores in
0..1 and non-increasing. It is pure Python (no numpy / torch), deterministic, and fast (tens of
thousands of captions per second on one core).

How it works, for English: a hand-written lexicon (``lexicon.py``) plus suffix rules tag each
word (function word, noun, verb, adjective, colour, count, adverb) using its left neighbour for
the noun/verb ambiguities ("a *run*" / "dogs *run*"); a chunker groups noun phrases; then each
content word gets a salience prior from its role in the description. The head of the first noun
phrase is usually the picture's subject ("dog"), the heads of later noun phrases are the scene
and objects ("snow", "ball"), the first content verb is the main action ("running"), and
modifiers (colours, sizes, counts) come after. A common basic-level word ("dog", "water",
"run") outranks a rarer one, which other describers are less likely to use. A modifier is
listed as its phrase ("black dog") at its own rank, so a phrase never spends the first places of
a ranking on a low-value word. Other languages get a best-effort stopword / position ranking.

Long descriptions (a VLM's 150-300 word "detailed" caption): the position decay of later noun
phrases is bounded (``_decay``), every score of a later sentence is damped, and a noun named again
in later sentences gains weight, so the top keywords are the main subjects, not the last phrases.
"""
from __future__ import annotations

import gc
import re
from contextlib import contextmanager
from typing import Iterable

from . import lexicon as L
from .lexicon import STOPWORDS, SUPPORTED_LANGUAGES

__all__ = ["extract", "extract_many", "gc_paused", "STOPWORDS", "SUPPORTED_LANGUAGES", "WEIGHTS"]

_TOKEN = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*|[.,;:!?()\"/]")
_BOUNDARY = frozenset(".,;:!?()\"/")
_SENTENCE_END = frozenset(".!?")

# Salience priors by role (general, hand-set; see module docstring).
WEIGHTS = {
    "subject": 0.90,      # head of the first noun phrase
    "subject_rare": 0.50, # ... when it is not a common basic-level noun
    "head": 0.66,         # head of a later noun phrase (minus the position decay)
    "head_rare": 0.48,    # ... when not a common basic-level noun
    "decay": 0.05,        # position decay of the second noun phrase's head ...
    "decay_max": 0.36,    # ... growing geometrically towards this bound (long texts: see _decay)
    "sentence_decay": 0.1,  # every score of sentence s (0-based) is divided by 1 + s * this
    "repeat": 0.5,        # a noun named in m sentences gains repeat * (1 - 1/m) of its distance to 1
    "person_later": 0.60, # a people noun that is not the subject
    "partitive": 0.30,    # "group" in "a group of people"
    "clothing": 0.30,     # "shirt", or anything after "wearing"
    "body": 0.33,
    "generic": 0.28,      # "person", "child", "ground": hypernyms others name differently
    "relational": 0.22,   # "front", "side", "top", "background"
    "noun_mod": 0.50,     # first noun of a compound ("soccer ball")
    "verb": 0.66,         # first content verb (the main action)
    "verb_later": 0.55,
    "verb_rare": 0.30,    # a verb outside the common-verb list ("waterskiing")
    "verb_weak": 0.32,    # wear / look / watch ...
    "participle": 0.15,   # "dressed", "covered"
    "colour": 0.46, "adjective": 0.27, "pred_adjective": 0.30, "count": 0.20, "adverb": 0.15,
    "merge": 1.0,         # pull a modifier into its head's phrase only when >= merge * head score
    "attach": 0.0,        # list a modifier as "modifier head" when the head >= attach * its score
}


# --------------------------------------------------------------------------- word table
def _verb_forms(base: str) -> dict[str, str]:
    forms = {base: "base"}
    if base.endswith(("s", "sh", "ch", "x", "z")):
        forms[base + "es"] = "s"
    elif base.endswith("y") and base[-2:-1] not in "aeiou":
        forms[base[:-1] + "ies"] = "s"
    else:
        forms[base + "s"] = "s"
    if base.endswith("ie"):
        stem = base[:-2] + "y"
    elif base.endswith("e") and not base.endswith(("ee", "ye", "oe")):
        stem = base[:-1]
    else:
        stem = base
    forms[stem + "ing"] = "ing"
    forms[(base[:-1] + "ied") if forms.get(base[:-1] + "ies") else (stem + "ed" if stem != base else base + "d")] = "ed"
    if re.search(r"[^aeiou][aeiou][bdgklmnprt]$", base):  # run -> running, sit -> sitting
        forms[base + base[-1] + "ing"] = "ing"
        forms[base + base[-1] + "ed"] = "ed"
    return forms


def _build_table() -> dict[str, tuple[str, str]]:
    """word -> (class, lemma). Classes: D det, P prep, C conj, W pronoun, X aux, O other
    stopword, Q count, K colour, A adjective, R adverb, Vb/Vs/Vg/Vd verb forms, N noun."""
    table: dict[str, tuple[str, str]] = {}
    for base in sorted(L.VERB_BASES | L.LIGHT_VERBS):
        for form, kind in _verb_forms(base).items():
            table.setdefault(form, ({"base": "Vb", "s": "Vs", "ing": "Vg", "ed": "Vd"}[kind], base))
    for form, base in L.IRREGULAR_VERBS.items():
        table[form] = ("Vd" if not form.endswith("ing") else "Vg", base)
    for w in L.ING_NOUNS:
        table[w] = ("N", w)
    for cls, words in (("A", L.ADJECTIVES), ("R", L.ADVERBS), ("K", L.COLOURS), ("Q", L.NUMBERS)):
        for w in words:
            table[w] = (cls, w)
    for cls, words in (("O", STOPWORDS["english"]), ("X", L.AUXILIARIES), ("C", L.CONJUNCTIONS),
                       ("P", L.PREPOSITIONS), ("W", L.PRONOUNS), ("D", L.DETERMINERS)):
        for w in words:
            table[w] = (cls, w)
    content = L.BASIC_NOUNS | L.CLOTHING | L.BODY_PARTS | L.PEOPLE | L.GENERIC_NOUNS | L.RELATIONAL_NOUNS
    for lang in sorted(STOPWORDS):  # best effort on mixed / foreign text in english mode
        for w in sorted(STOPWORDS[lang] - content):
            table.setdefault(w, ("O", w))
    for w in ("one", "two", "three", "several", "many", "few", "couple", "pair"):
        table[w] = ("Q", w)
    for w in ("back", "front", "top", "side", "middle", "bottom", "left", "right"):
        table[w] = ("N", w)  # as heads they are relational nouns; as modifiers fine
    return table


_TABLE = _build_table()
_KNOWN_NOUNS = frozenset(_TABLE) | L.BASIC_NOUNS | L.CLOTHING | L.BODY_PARTS | L.GENERIC_NOUNS | L.PEOPLE
_FUNCTION = frozenset("DPCWXO")
_NP_PART = frozenset(("Q", "K", "A", "N", "M"))  # M: participle used as a modifier


def _norm(word: str) -> str:
    """Light singular form used to merge "dogs"/"dog" within one caption."""
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        if word.endswith("ies") and len(word) > 4:
            return word[:-3] + "y"
        if word.endswith(("ches", "shes", "xes", "sses")):
            return word[:-2]
        return word[:-1]
    return word


_CACHE: dict[str, tuple[str, str]] = {}


def _static(word: str) -> tuple[str, str]:
    hit = _TABLE.get(word) or _CACHE.get(word)
    if hit is not None:
        return hit
    if len(_CACHE) > 50_000:  # bounded memo of suffix-rule results for unknown words
        _CACHE.clear()
    hit = _CACHE[word] = _guess(word)
    return hit


def _guess(word: str) -> tuple[str, str]:
    if word.isdigit():
        return ("Q", word)
    if "-" in word:
        last = word.rsplit("-", 1)[1]
        return ("M", word) if last.endswith(("ed", "ing")) else ("N", word)
    if len(word) > 5 and word.endswith("ing"):
        return ("Vg", word)
    if len(word) > 4 and word.endswith("ly"):
        return ("R", word)
    if len(word) > 4 and word.endswith("ed"):
        return ("Vd", word)
    return ("N", word)


_PLURAL_IRREGULAR = frozenset("people men women children kids police cattle sheep deer fish geese mice they we you".split())


def _plural(word: str) -> bool:
    return word in _PLURAL_IRREGULAR or (word.endswith("s") and not word.endswith(("ss", "us", "is")))


def _tag(words: list[str]) -> list[str]:
    """Resolve noun/verb ambiguity from the neighbours, with subject-verb agreement:
    "dogs *play*" / "a *play* area", "a dog *runs*" / "the *runs*", "is *running*" / "a *building*"."""
    statics = [_static(w)[0] for w in words]
    tags: list[str] = []
    prev = "^"
    last_content = "^"  # tag before a conjunction, for "runs and *jumps*"
    n = len(words)
    for i, cls in enumerate(statics):
        nxt = statics[i + 1] if i + 1 < n else "$"
        if cls[0] == "V":
            coordinated = prev == "C" and last_content == "V"
            if cls == "Vb":
                agree = prev in ("N", "W", "V")
                cls = "V" if agree or coordinated or prev == "R" or words[i - 1:i] == ["to"] else "N"
            elif cls == "Vs":
                cls = "V" if prev in ("N", "W", "R") or coordinated else "N"
            elif cls == "Vg":
                if prev in ("D", "Q", "K", "A"):
                    cls = "M" if nxt in ("N", "Vb", "Vs") else "N"
                else:
                    cls = "V"
            elif prev in ("D", "Q", "K", "A") and nxt in ("N", "Vb", "Vs"):
                cls = "M"  # "a covered bridge"
            else:  # finite past ("dribbled the ball") or participle ("dressed in")
                cls = "V" if (prev == "N" or coordinated) and nxt == "D" else "v"
        elif cls == "N" and prev in ("N", "K") and nxt in ("D", "P") and len(words[i]) > 3 \
                and _plural(words[i]) and not _plural(words[i - 1]) and words[i] not in _KNOWN_NOUNS:
            cls = "V"  # unknown "-s" word after a singular noun, before "the/a/on": "a dog pounces on"
        tags.append(cls)
        if cls != "C":
            last_content = cls
        prev = cls if cls != "M" else "A"
    return tags


# --------------------------------------------------------------------------- english
def _decay(np_index: int) -> float:
    """Score lost by the head of the ``np_index``-th noun phrase (0-based): ``decay`` for the
    second phrase, then geometrically less per phrase, never more than ``decay_max``.

    Bounded, so a head late in a 300-word description keeps a positive score below the early
    ones (a linear decay went negative after ~30 phrases) and every noted word has a score."""
    step, bound = WEIGHTS["decay"], WEIGHTS["decay_max"]
    return bound * (1.0 - (1.0 - step / bound) ** np_index)


def _english(caption: str, max_words: int, keep_colors: bool, keep_counts: bool) -> list[tuple[str, float]]:
    W = WEIGHTS
    words: list[str] = []
    breaks: set[int] = set()
    sentence_of: list[int] = []  # sentence index of each word (long descriptions)
    sentence = 0
    for t in _TOKEN.findall(caption.lower()):
        if t in _BOUNDARY:
            breaks.add(len(words))
            if t in _SENTENCE_END and sentence_of and sentence_of[-1] == sentence:
                sentence += 1
            continue
        sentence_of.append(sentence)
        if t.endswith(("'s", "’s")) and len(t) > 2:
            t = t[:-2]
        words.append(t)
    if not words:
        return []
    tags = _tag(words)
    n = len(words)
    scores: dict[str, float] = {}     # normalised word -> best salience
    surface: dict[str, str] = {}      # normalised word -> first surface form
    first_pos: dict[str, int] = {}
    phrases: dict[str, list[str]] = {}  # head key -> modifier keys in order
    owner: dict[str, str] = {}          # modifier key -> head key

    mentions: dict[str, set[int]] = {}  # noun key -> sentences it is named in
    several = sentence_of[-1] > 0

    def note(i: int, value: float, noun: bool = False) -> str:
        key = _norm(words[i])
        if key not in first_pos:
            first_pos[key] = i
            surface[key] = words[i]
        if several:  # a multi-sentence description: later sentences weigh less, repeats more
            s = sentence_of[i]
            value /= 1.0 + W["sentence_decay"] * s
            if noun:
                mentions.setdefault(key, set()).add(s)
        old = scores.get(key)
        if old is None or value > old:
            scores[key] = value
        return key

    i = np_index = verb_index = 0
    subject_done = partitive_pending = False
    wear_context = False
    while i < n:
        tag = tags[i]
        if tag in _NP_PART:
            j = i + 1
            while j < n and tags[j] in _NP_PART and j not in breaks:
                j += 1
            head = j - 1
            while head >= i and tags[head] != "N":
                head -= 1
            if head < i:  # predicate adjectives / colours / counts without a noun
                for k in range(i, j):
                    t = tags[k]
                    if (t == "K" and not keep_colors) or (t == "Q" and not keep_counts):
                        continue
                    note(k, W["count"] if t == "Q" else W["colour"] if t == "K" else W["pred_adjective"])
                i = j
                continue
            hw = words[head]
            decay = _decay(np_index)
            if hw in L.PARTITIVES and j < n and words[j] == "of":
                value = W["partitive"]
                partitive_pending = not subject_done
            elif wear_context or hw in L.CLOTHING:
                value = W["clothing"]
            elif hw in L.RELATIONAL_NOUNS:
                value = W["relational"]
            elif hw in L.BODY_PARTS:
                value = W["body"]
            elif hw in L.GENERIC_NOUNS:
                value = W["generic"]
            else:
                basic = hw in L.BASIC_NOUNS or hw in L.PEOPLE or _norm(hw) in L.BASIC_NOUNS
                if not subject_done or partitive_pending:
                    value = W["subject"] if basic else W["subject_rare"]
                elif hw in L.PEOPLE:
                    value = W["person_later"]
                else:
                    value = (W["head"] if basic else W["head_rare"]) - decay
            if hw not in L.PARTITIVES:
                subject_done, partitive_pending = True, False
            head_key = note(head, value, noun=True)
            mods = phrases.setdefault(head_key, [])
            for k in range(i, j):
                if k == head:
                    continue
                t = tags[k]
                if t == "N":
                    mv = W["noun_mod"] if k < head else value
                elif t == "K":
                    if not keep_colors:
                        continue
                    mv = W["colour"]
                elif t == "Q":
                    if not keep_counts:
                        continue
                    mv = W["count"]
                else:
                    mv = W["adjective"]
                key = note(k, mv, noun=t == "N")
                if k < head and key != head_key and key not in mods:
                    mods.append(key)
                    owner.setdefault(key, head_key)
            np_index += 1
            wear_context = False
            i = j
            continue
        if tag == "V" or tag == "v":
            lemma = _TABLE.get(words[i], (None, words[i]))[1]
            wear_context = lemma in ("wear", "dress")
            if lemma not in L.LIGHT_VERBS:
                if tag == "v":
                    value = W["participle"]
                elif lemma in L.WEAK_VERBS:
                    value = W["verb_weak"]
                elif words[i] not in _TABLE:
                    value = W["verb_rare"]
                else:
                    value = W["verb"] if verb_index == 0 else W["verb_later"]
                    verb_index += 1
                note(i, value)
        elif tag == "R":
            note(i, W["adverb"])
        elif tag != "P" and tag != "D":
            wear_context = False
        i += 1
    gain = W["repeat"]
    for key, named_in in mentions.items():  # named again in later sentences: a main subject
        if len(named_in) > 1:
            scores[key] += (1.0 - scores[key]) * gain * (1.0 - 1.0 / len(named_in))
    return _assemble(scores, surface, first_pos, phrases, owner, max_words)


def _assemble(scores, surface, first_pos, phrases, owner, max_words) -> list[tuple[str, float]]:
    """Turn word saliences into ranked phrases (see the module docstring)."""
    merge = WEIGHTS["merge"]
    entries: dict[str, float] = {}
    merged: set[str] = set()
    for key in sorted(scores, key=lambda k: (-scores[k], first_pos[k])):
        s = scores[key]
        if key in merged:
            continue
        if max_words == 1:
            entries.setdefault(surface[key], s)
            continue
        mods = phrases.get(key)
        if mods is not None:
            keep = [m for m in mods if scores[m] >= merge * s and m not in merged][-(max_words - 1):]
            merged.update(keep)
            text = " ".join([surface[m] for m in keep] + [surface[key]])
        elif key in owner and scores[owner[key]] >= WEIGHTS["attach"] * s:
            text = f"{surface[key]} {surface[owner[key]]}"
        else:
            text = surface[key]
        entries.setdefault(text, s)
    return list(entries.items())


# --------------------------------------------------------------------------- other languages
def _generic(caption: str, language: str, max_words: int) -> list[tuple[str, float]]:
    stop = STOPWORDS[language]
    runs: list[list[str]] = [[]]
    for t in _TOKEN.findall(caption.lower()):
        if t in _BOUNDARY or t in stop or t.isdigit():
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append(t)
    out: dict[str, float] = {}
    pos = 0
    for run in runs:
        for start in range(0, len(run), max_words):
            chunk = run[start:start + max_words]
            out.setdefault(" ".join(chunk), max(0.05, 1.0 - 0.06 * pos))
            pos += 1
    return [(t, round(s, 4)) for t, s in sorted(out.items(), key=lambda kv: -kv[1]) if t]


# --------------------------------------------------------------------------- public API
def extract(caption: str, *, top_k: int = 8, max_words: int = 3, language: str = "english",
            keep_colors: bool = True, keep_counts: bool = True, min_score: float = 0.0) -> list[tuple[str, float]]:
    """Ranked key phrases of one caption: ``[(phrase, score 0..1), ...]``, best first.

    ``max_words`` caps the words per phrase (1 = single words); ``keep_colors`` /
    ``keep_counts`` keep colour and count modifiers; phrases scoring below ``min_score`` are
    dropped. Any string is accepted: empty or whitespace gives ``[]``.
    """
    if language not in STOPWORDS:
        raise ValueError(f"language must be one of {', '.join(SUPPORTED_LANGUAGES)}, got {language!r}")
    if not isinstance(caption, str):
        caption = "" if caption is None else str(caption)
    top_k = int(top_k)
    max_words = max(1, int(max_words))
    if top_k <= 0 or not caption.strip():
        return []
    if language == "english":
        ranked = _english(caption, max_words, keep_colors, keep_counts)
    else:
        ranked = _generic(caption, language, max_words)
    out = []
    for text, score in ranked:
        score = round(min(1.0, max(0.0, score)), 4)
        if score < min_score:
            break  # ranked is non-increasing
        out.append((text, score))
        if len(out) == top_k:
            break
    return out


def extract_many(captions: Iterable[str], **kw) -> list[list[tuple[str, float]]]:
    """``extract`` for each caption, in order.

    The cyclic garbage collector is paused for the loop: extraction allocates many small objects
    that live on in the result list (no reference cycles), and the collector's repeated scans of
    them cost about a third of the time on 5,000 captions.
    """
    with gc_paused():
        return [extract(c, **kw) for c in captions]


@contextmanager
def gc_paused():
    """Pause the cyclic garbage collector inside the block (see ``extract_many``)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()
