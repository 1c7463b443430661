"""Keyword nodes: Extract Keywords, Edit Keywords."""
from __future__ import annotations

from ._common import category, first

_METHODS = ["statistical", "embedding", "image-grounded", "llm"]


def _languages() -> list[str]:
    try:
        from ..core.keywords.candidates import supported_languages

        return list(supported_languages())
    except Exception:  # the word lists must not break /object_info
        return ["english"]


class LLMAssistExtractKeywords:
    DESCRIPTION = (
        "Ranked key phrases of each caption, as LLMA_KEYWORDS (text, score 0..1, source) and as a comma list.\n"
        "Methods: statistical (no model, fast); embedding (KeyBERT-style: phrases most similar to the caption "
        "by a text encoder, MMR for variety; connect image_encoder); image-grounded (phrases most similar to the "
        "image itself, blended with the statistical score; connect image_encoder and the features it made); "
        "llm (a language model writes a JSON list; unreadable output falls back to statistical with source "
        "'statistical-fallback'; connect language_model).\n"
        "A batch of N captions gives N keyword lists; caption i is paired with image i of the features."
    )
    CATEGORY = category("keywords")
    FUNCTION = "extract"
    INPUT_IS_LIST = True
    RETURN_TYPES = ("LLMA_KEYWORDS", "STRING")
    RETURN_NAMES = ("keywords", "keywords_text")
    OUTPUT_IS_LIST = (True, True)
    OUTPUT_TOOLTIPS = (
        "Ranked keywords per caption (best first) for Edit Keywords / Build Prompt / Keyword Fidelity.",
        "The same keywords as a comma-separated list per caption (wire into CLIPTextEncode or a text display).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "caption": ("STRING", {"multiline": True, "default": "", "tooltip": "Caption text (one per image; connect Caption Image)."}),
                "method": (_METHODS, {"default": "statistical", "tooltip": "statistical: no model. embedding: text-encoder similarity (needs image_encoder). image-grounded: similarity to the image (needs image_encoder + features). llm: a language model lists them (needs language_model)."}),
                "top_k": ("INT", {"default": 8, "min": 1, "max": 64, "tooltip": "At most this many keywords per caption."}),
                "min_score": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": "Drop keywords scored below this (0..1)."}),
                "max_words": ("INT", {"default": 3, "min": 1, "max": 6, "tooltip": "Longest key phrase, in words."}),
                "language": (_languages(), {"default": "english", "tooltip": "Stopword language of the captions."}),
                "keep_colors": ("BOOLEAN", {"default": True, "tooltip": "Keep colour words ('black dog', 'red'). Off: colours are ignored like stopwords."}),
                "keep_counts": ("BOOLEAN", {"default": True, "tooltip": "Keep counts ('two dogs'). Off: numbers and count words are ignored."}),
                "diversity": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip": "embedding method only: 0 = most similar phrases, higher = more varied phrases (MMR)."}),
            },
            "optional": {
                "image_encoder": ("LLMA_IMAGE_ENCODER", {"tooltip": "Text encoder for embedding / image-grounded (Load Image Encoder)."}),
                "features": ("LLMA_FEATURES", {"tooltip": "Image features from Encode Image (same encoder) for image-grounded."}),
                "language_model": ("LLMA_LANGUAGE_MODEL", {"tooltip": "Language model for the llm method (Load Language Model)."}),
            },
        }

    def extract(self, caption, method, top_k, min_score, max_words, language, keep_colors, keep_counts,
                diversity, image_encoder=None, features=None, language_model=None):
        from ..core.keywords import extract_keywords_batch

        results = extract_keywords_batch(
            caption if isinstance(caption, list) else [caption], first(method), features=features,
            top_k=first(top_k), min_score=first(min_score), max_words=first(max_words), language=first(language),
            keep_colors=first(keep_colors), keep_counts=first(keep_counts), encoder=first(image_encoder),
            language_model=first(language_model), diversity=first(diversity))
        return (results, [k.as_string() for k in results])


class LLMAssistEditKeywords:
    DESCRIPTION = (
        "Change a keyword list with a small syntax (items separated by commas or new lines):\n"
        "  -TERM          remove TERM\n"
        "  +TERM  /  TERM add TERM\n"
        "  +TERM:W        add TERM with prompt weight W (0..5; 1 = neutral)\n"
        "  TERM:W         reweight TERM (must be present)\n"
        "  OLD=>NEW       replace OLD by NEW ('->' works too; keeps score and position); OLD=>NEW:W sets W too\n"
        "Example: -cat, +fox:1.2, at night, cat=>fox, dog:0.5\n"
        "Matching ignores case; a term matches whole keywords first, else every keyword containing it as a "
        "word (-cat removes 'black cat'). Weights are ComfyUI prompt weights that Build Prompt renders as "
        "(TERM:W). Terms that match nothing are listed in the report output ('not found: cat'). A syntax "
        "error names the character position and the fix."
    )
    CATEGORY = category("keywords")
    FUNCTION = "edit"
    RETURN_TYPES = ("LLMA_KEYWORDS", "STRING", "STRING")
    RETURN_NAMES = ("keywords", "keywords_text", "report")
    OUTPUT_TOOLTIPS = (
        "The edited keywords (edited ones carry source 'edit').",
        "The edited keywords as a comma-separated list.",
        "Edits whose term matched nothing, e.g. 'not found: cat' (empty when all applied).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "keywords": ("LLMA_KEYWORDS", {"tooltip": "Keywords from Extract Keywords."}),
                "edits": ("STRING", {"multiline": True, "default": "", "tooltip": "Edits, e.g. '-cat, +fox:1.2, at night, cat=>fox, dog:0.5' (see the node description)."}),
            }
        }

    def edit(self, keywords, edits):
        from ..core.keywords.edit import apply_edits, report

        edited, missing = apply_edits(keywords, edits)
        return (edited, edited.as_string(), report(missing))


NODE_CLASS_MAPPINGS = {
    "LLMAssistExtractKeywords": LLMAssistExtractKeywords,
    "LLMAssistEditKeywords": LLMAssistEditKeywords,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LLMAssistExtractKeywords": "Extract Keywords",
    "LLMAssistEditKeywords": "Edit Keywords",
}
