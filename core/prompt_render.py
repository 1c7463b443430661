"""Surface forms of a prompt for encoders that read language: ``natural`` sentences and ``json``.

Keywords are language-neutral data (text, weight); these renderers decide the words around them.
Neither form ever contains ``(term:1.2)`` syntax: a weight is said by **order** (heavier first)
and, in ``natural``, by **emphasis words** in three tiers:

* ``strong``  weight >= 1.15 ("prominently featuring ..."),
* ``normal``  0.95 <= weight < 1.15 ("also showing ..."),
* ``subtle``  weight < 0.95 ("subtle hints of ...").

The first (heaviest, ties: earliest) term is the subject and opens the text.

Glue words exist for the languages the statistical keyword extractor supports (english, german,
french, spanish). ``neutral`` uses no words at all, only punctuation (the subject, then one
sentence per tier), so keywords in any other language never get foreign words around them.
The renderer never translates a keyword: with ``english`` glue, German keywords stay German.

``json`` is one object with the keys ``subject``, ``scene``, ``style``, ``lighting``, ``camera``
(always all five, strings, terms joined by ", " heaviest first; empty string when none); terms
about light, camera/framing and style go to their field by a small word list, the rest to scene;
the template (style text) goes to ``style``.
"""
from __future__ import annotations

import json
import re

STRONG = 1.15
SUBTLE = 0.95

# language -> (subject sentence, strong lead, normal lead, subtle lead, "and")
GLUE: dict[str, tuple[str, str, str, str, str]] = {
    "english": ("{} as the main subject", "Prominently featuring {}", "Also showing {}", "Subtle hints of {}", "and"),
    "german": ("{} als Hauptmotiv", "Deutlich hervorgehoben: {}", "Außerdem zu sehen: {}", "Dezent im Hintergrund: {}",
               "und"),
    "french": ("{} comme sujet principal", "Bien mis en valeur : {}", "On voit aussi : {}", "Discrètement : {}", "et"),
    "spanish": ("{} como motivo principal", "Destacado: {}", "También se ve: {}", "Sutilmente: {}", "y"),
    "neutral": ("{}", "{}", "{}", "{}", ""),
}
RENDER_LANGUAGES = tuple(GLUE)

_FIELD_WORDS = {
    "lighting": """light lights lighting lit sunlight sunlit moonlight backlit backlight backlighting shadow shadows
        glow glowing neon sunset sunrise dusk dawn twilight hour night daylight overcast illumination
        illuminated bright dark dim rim silhouette luz licht lumière lumiere iluminación beleuchtung éclairage
        sonnenuntergang coucher atardecer nacht nuit noche""",
    "camera": """close-up closeup portrait shot wide angle wide-angle lens macro bokeh aerial overhead
        telephoto fisheye depth field focus framing view perspective angle 35mm 50mm 85mm dslr camera photo
        photograph photography zoom panorama panoramic nahaufnahme aufnahme gros plan plano primer""",
    "style": """style painting painted illustration drawing sketch watercolor watercolour oil anime cartoon render
        rendered 3d digital art artwork cinematic realistic photorealistic hyperrealistic vintage retro minimalist
        abstract surreal impressionist baroque noir monochrome sepia detailed highly quality masterpiece
        gemälde zeichnung peinture dessin pintura dibujo estilo stil""",
}
_FIELD_SETS = {k: frozenset(v.split()) for k, v in _FIELD_WORDS.items()}
_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*", re.UNICODE)
# "(anything:1.2)" even after every conversion, e.g. from escaped brackets: never emitted
WEIGHT_LIKE = re.compile(r"\(([^()]*?):\s*[+-]?(?:\d+\.?\d*|\.\d+)\s*\)")


def safe_term(text: str) -> str:
    """A term without anything that reads as weight syntax: brackets of ``(x:1.2)`` dropped, spaces tidied."""
    text = WEIGHT_LIKE.sub(lambda m: m.group(1), text or "")
    text = text.replace("\\(", "(").replace("\\)", ")").replace("\\[", "[").replace("\\]", "]")
    text = WEIGHT_LIKE.sub(lambda m: m.group(1), text)
    return " ".join(text.split())


def ordered(terms) -> list[tuple[str, float]]:
    """``(text, weight)`` heaviest first (stable: ties keep keyword order), empty texts dropped."""
    clean = [(safe_term(t), float(w)) for t, w in terms]
    indexed = [(i, t, w) for i, (t, w) in enumerate(clean) if t]
    return [(t, w) for _, t, w in sorted(indexed, key=lambda x: (-x[2], x[0]))]


def join_list(items: list[str], language: str) -> str:
    conj = GLUE[language][4]
    if not conj or len(items) < 2:
        return ", ".join(items)
    return f"{', '.join(items[:-1])} {conj} {items[-1]}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def _sentence(text: str) -> str:
    """``text`` ending in a full stop: the ideographic one after Chinese / Japanese / Korean text."""
    text = text.strip().rstrip(",;:")
    if not text or text[-1] in ".!?…。！？":
        return text
    return text + ("。" if _CJK.match(text[-1]) else ".")


def _join(sentences) -> str:
    out = ""
    for sentence in sentences:
        if sentence:
            out += ("" if not out or out.endswith(("。", "！", "？")) else " ") + sentence
    return out


def render_natural(terms, language: str = "english", template: str = "") -> str:
    """Sentences from ``(text, weight)`` terms: subject first, then strong / normal / subtle tiers.

    ``template`` is style text: with ``{keywords}`` the text before it leads the first sentence
    ("a photo of {keywords}") and the text after it is a sentence of its own; without it the
    template is appended as its own sentence. The caller converts any weight syntax in the template first.
    """
    if language not in GLUE:
        raise ValueError(f"language must be one of {list(GLUE)}, got {language!r}")
    subject_fmt, strong_fmt, normal_fmt, subtle_fmt, _ = GLUE[language]
    items = ordered(terms)
    sentences: list[str] = []
    if items:
        sentences.append(subject_fmt.format(items[0][0]))
        tiers = ([t for t, w in items[1:] if w >= STRONG], [t for t, w in items[1:] if SUBTLE <= w < STRONG],
                 [t for t, w in items[1:] if w < SUBTLE])
        for fmt, tier in zip((strong_fmt, normal_fmt, subtle_fmt), tiers):
            if tier:
                sentences.append(fmt.format(join_list(tier, language)))
    body = _join(_sentence(_capital(s)) for s in sentences)
    template = safe_term(template)
    if not template:
        return body
    if "{keywords}" in template:  # text before the terms leads the first sentence, text after is a sentence
        before, _, after = template.partition("{keywords}")
        before, after = before.strip(" ,;"), after.replace("{keywords}", "").strip(" ,;.")
        if before and body:
            body = f"{before} {body[:1].lower() if language != 'german' else body[:1]}{body[1:]}"
            body = body[:-1] if body.endswith(".") else body
        elif before:
            body = before
        return _join(_sentence(_capital(p)) for p in (body, after) if p)
    return _join((body, _sentence(_capital(template))))


def field_of(term: str) -> str:
    """'lighting', 'camera', 'style' or 'scene' for one term, by the word lists above."""
    words = {w.lower() for w in _WORD.findall(term)}
    for name in ("lighting", "camera", "style"):
        if words & _FIELD_SETS[name]:
            return name
    return "scene"


JSON_FIELDS = ("subject", "scene", "style", "lighting", "camera")


def json_fields(terms, template: str = "") -> dict[str, str]:
    items = ordered(terms)
    fields: dict[str, list[str]] = {name: [] for name in JSON_FIELDS}
    subject_found = False
    for text, _ in items:
        kind = field_of(text)
        if kind == "scene" and not subject_found:
            fields["subject"].append(text)
            subject_found = True
        else:
            fields[kind].append(text)
    if not subject_found and items:  # every term is light / camera / style: the heaviest is still the subject
        first = items[0][0]
        for name in ("lighting", "camera", "style"):
            if first in fields[name]:
                fields[name].remove(first)
                break
        fields["subject"].append(first)
    parts = [safe_term(p).strip(" ,;") for p in (template or "").split("{keywords}")]
    template = ", ".join(p for p in parts if p)
    if template:
        fields["style"].append(template)
    return {name: ", ".join(values) for name, values in fields.items()}


def render_json(terms, template: str = "") -> str:
    """One JSON object with the five fields (see module docstring); keys in that order, UTF-8 kept."""
    return json.dumps(json_fields(terms, template), ensure_ascii=False)
