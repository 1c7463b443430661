"""Prompt nodes: Build Prompt, Load Language Model, Expand Prompt."""
from __future__ import annotations

from ._common import category, hf_loader_inputs, load_hf_model

_NEGATIVE_PRESETS = ["none", "photo defaults", "artwork defaults", "anatomy", "text and watermarks"]
_EXPAND_PRESETS = ["sd prompt", "cinematic", "concise", "detailed", "image paragraph", "video motion", "custom", "auto"]
_TARGETS = ["auto", "tags", "natural", "json"]  # core.prompt_targets.TARGET_CHOICES
_LANGUAGES = ["auto", "english", "german", "french", "spanish", "neutral"]  # core.prompt_targets.LANGUAGE_CHOICES
_OUTPUT_LANGUAGES = ["auto", "input language", "english"]  # core.language_model.OUTPUT_LANGUAGES
_TARGET_TOOLTIP = (
    "Prompt form. auto: the connected pipeline's family decides (SD 1.x/2.x/SDXL: tags; FLUX.1, SD3, "
    "Qwen-Image, Z-Image, Chroma, Sana: natural; FLUX.2: json); without a pipeline, tags. tags: weighted "
    "(term:1.2) list for CLIP. natural: sentences, subject first, weights said by order and emphasis words. "
    "json: {subject, scene, style, lighting, camera}. Set it by hand when the text goes to a native sampler."
)
_BUDGET_TOOLTIP = (
    "Token budget of the whole rendered prompt (weights, template, BOS/EOS included); 77 fits one CLIP "
    "window, 0 = no limit. For natural / json targets the budget is capped at the encoder's length (FLUX.1: "
    "512 T5 tokens, SD3: 256) and 0 means that length. Counted exactly with the tokenizer of a connected "
    "pipeline, tokenizer folder or image encoder, otherwise with a documented estimate (CLIP: a safe upper "
    "bound, 2 + bytes without spaces, that may drop more than needed; T5/Qwen: 1 + bytes / 2.5)."
)


def _tokenizer_choices() -> list[str]:
    from ..core.prompt_targets import tokenizer_choices

    try:
        return tokenizer_choices()
    except Exception:  # a broken folder must not break ComfyUI's /object_info
        return ["auto"]


def _target_inputs() -> dict:
    """Optional inputs shared by Build Prompt and Expand Prompt (appended: saved workflows still load)."""
    return {
        "target": (_TARGETS, {"default": "auto", "tooltip": _TARGET_TOOLTIP}),
        "tokenizer": (_tokenizer_choices(), {"default": "auto", "tooltip": "Count tokens with this tokenizer folder. auto: the pipeline's prompt tokenizer (T5 for FLUX.1/SD3, Qwen for Qwen-Image/Z-Image, CLIP for SD), else an image encoder's (tags), else ComfyUI's bundled one for the target, else an estimate."}),
    }


class LLMAssistBuildPrompt:
    DESCRIPTION = (
        "Turn keywords into a prompt: scores 0..1 map to weights min_weight..max_weight rendered as ComfyUI "
        "(term:1.2) syntax (keywords reweighted in Edit Keywords keep their weight); must-keep terms are always "
        "included and never dropped; the template wraps the terms ('{keywords}' marks where they go, otherwise "
        "the template is appended as style text); negative terms plus a preset. Over the token budget, the "
        "lowest-scored terms are dropped first. The positive / negative STRING outputs wire into CLIPTextEncode.\n"
        "target: tags (CLIP, the weighted list), natural (sentences for T5/Qwen encoders: FLUX, SD3, Qwen-Image, "
        "Z-Image; weights become order and emphasis words) or json (FLUX.2); auto follows the connected pipeline. "
        "For natural/json the budget is capped at the encoder's length (0 = that length). Weight syntax sent to "
        "an encoder that cannot weight is converted, and the report output says so."
    )
    CATEGORY = category("prompt")
    FUNCTION = "build"
    RETURN_TYPES = ("LLMA_PROMPT", "STRING", "STRING", "STRING")
    RETURN_NAMES = ("prompt", "positive", "negative", "report")
    OUTPUT_TOOLTIPS = (
        "The prompt spec (weighted terms, negative terms, must-keep, template, budget) for the Generate nodes.",
        "Positive prompt text for the target: ComfyUI weight syntax for tags, sentences or JSON otherwise (wire into CLIPTextEncode).",
        "Negative prompt text (wire into the negative CLIPTextEncode).",
        "JSON report: target and why, family, encoder, token count and counter, budget, dropped terms, converted weight syntax, notes.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "keywords": ("LLMA_KEYWORDS", {"tooltip": "Keywords from Extract Keywords or Edit Keywords."}),
                "template": ("STRING", {"multiline": True, "default": "", "tooltip": "Optional style text. With '{keywords}' the terms go there (e.g. 'a photo of {keywords}, 35mm'); without it the text is appended."}),
                "must_keep": ("STRING", {"default": "", "tooltip": "Comma-separated terms that are always in the prompt and never dropped for the budget."}),
                "negative": ("STRING", {"multiline": True, "default": "", "tooltip": "Comma-separated negative terms (added to the preset's)."}),
                "negative_preset": (_NEGATIVE_PRESETS, {"default": "none", "tooltip": "Ready-made negative terms: photo defaults, artwork defaults, anatomy, text and watermarks."}),
                "min_weight": ("FLOAT", {"default": 0.8, "min": 0.0, "max": 3.0, "step": 0.05, "tooltip": "Weight of a keyword with score 0."}),
                "max_weight": ("FLOAT", {"default": 1.3, "min": 0.0, "max": 3.0, "step": 0.05, "tooltip": "Weight of a keyword with score 1. Set both to 1.0 for an unweighted prompt."}),
                "token_budget": ("INT", {"default": 77, "min": 0, "max": 1024, "tooltip": _BUDGET_TOOLTIP}),
            },
            "optional": {
                "pipeline": ("LLMA_PIPELINE", {"tooltip": "Optional: count tokens exactly with this pipeline's tokenizer."}),
                "image_encoder": ("LLMA_IMAGE_ENCODER", {"tooltip": "Optional: count tokens exactly with this CLIP encoder's tokenizer."}),
                **_target_inputs(),
                "language": (_LANGUAGES, {"default": "auto", "tooltip": "Words around the keywords in natural prompts. auto: the caption's language (english, german, french, spanish by their stopwords); neutral: no words, only punctuation (any other language). Keywords are never translated."}),
            },
        }

    def build(self, keywords, template, must_keep, negative, negative_preset, min_weight, max_weight,
              token_budget, pipeline=None, image_encoder=None, target="auto", tokenizer="auto", language="auto"):
        from ..core.prompt_builder import build_prompt_for, report_text
        from ..core.prompt_targets import resolve_target, token_counter

        resolved = resolve_target(target, pipeline)
        count, name = token_counter(resolved, tokenizer, image_encoder)
        spec = build_prompt_for(keywords, resolved, language=language, template=template, must_keep=must_keep,
                                negative=negative, negative_preset=negative_preset, min_weight=min_weight,
                                max_weight=max_weight, token_budget=token_budget, count_tokens=count, counter_name=name)
        return (spec, spec.positive_text(), spec.negative_text(), report_text(spec))


class LLMAssistLoadLanguageModel:
    DESCRIPTION = (
        "Load a causal language model (Qwen2, Llama, GPT-2, ...) from models/LLM for Expand Prompt and the "
        "llm keyword method. Local folders first; a Hugging Face repo id needs 'allow download'."
    )
    CATEGORY = category("loaders")
    FUNCTION = "load"
    RETURN_TYPES = ("LLMA_LANGUAGE_MODEL",)
    RETURN_NAMES = ("language_model",)
    OUTPUT_TOOLTIPS = ("The loaded language model (cached between runs unless keep_loaded is off).",)

    @classmethod
    def INPUT_TYPES(cls):
        return hf_loader_inputs("LLM", "A causal LM folder in models/LLM.")

    def load(self, model, repo_id="", **widgets):
        from ..core.language_model import load_language_model

        return (load_hf_model(load_language_model, "LLM", model, repo_id, widgets),)


class LLMAssistExpandPrompt:
    DESCRIPTION = (
        "A language model rewrites keywords or text into a richer prompt (chat template when the model has "
        "one, plain completion otherwise), cleaned and cut at a comma/word boundary to the token budget.\n"
        "mode generate: runs the model and shows the text on the node; copy it into fixed_text to freeze it.\n"
        "mode fixed: returns fixed_text unchanged, byte for byte, without running the model (replayable "
        "shared workflows; language_model may stay unconnected).\n"
        "Presets per generator: sd prompt (tag list for SD), image paragraph (FLUX, Qwen-Image, Z-Image), video "
        "motion (Wan, LTX: motion and camera); auto picks by the connected pipeline's family. A reasoning "
        "model's <think> text goes to the thinking output, never into the prompt."
    )
    CATEGORY = category("prompt")
    FUNCTION = "expand"
    RETURN_TYPES = ("STRING", "STRING")
    RETURN_NAMES = ("prompt", "thinking")
    OUTPUT_TOOLTIPS = ("The expanded prompt text (wire into CLIPTextEncode or Generate).",
                       "The model's thinking (<think>...</think> of reasoning models); empty when it wrote none or in fixed mode.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "mode": (["generate", "fixed"], {"default": "generate", "tooltip": "generate: run the model. fixed: return fixed_text exactly (no model)."}),
                "preset": (_EXPAND_PRESETS, {"default": "sd prompt", "tooltip": "Instruction given to the model; custom uses custom_instruction."}),
                "custom_instruction": ("STRING", {"multiline": True, "default": "", "tooltip": "Your own instruction (preset 'custom')."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True, "tooltip": "Sampling seed (same seed + settings = same text)."}),
                "max_new_tokens": ("INT", {"default": 77, "min": 1, "max": 1024, "tooltip": "Most tokens the model may write."}),
                "temperature": ("FLOAT", {"default": 0.7, "min": 0.0, "max": 2.0, "step": 0.05, "tooltip": "Sampling temperature; 0 = greedy (deterministic without a seed)."}),
                "token_budget": ("INT", {"default": 77, "min": 0, "max": 1024, "tooltip": _BUDGET_TOOLTIP}),
                "fixed_text": ("STRING", {"multiline": True, "default": "", "tooltip": "mode fixed: this text is returned exactly. Paste the text a generate run showed."}),
            },
            "optional": {
                "language_model": ("LLMA_LANGUAGE_MODEL", {"tooltip": "Language model from Load Language Model (needed in generate mode)."}),
                "keywords": ("LLMA_KEYWORDS", {"tooltip": "Keywords to expand (their comma list comes first)."}),
                "text": ("STRING", {"multiline": True, "default": "", "tooltip": "Text to expand (appended after the keywords when both are given)."}),
                "pipeline": ("LLMA_PIPELINE", {"tooltip": "Optional: count the budget with this pipeline's tokenizer."}),
                "image_encoder": ("LLMA_IMAGE_ENCODER", {"tooltip": "Optional: count the budget with this CLIP encoder's tokenizer."}),
                **_target_inputs(),
                "output_language": (_OUTPUT_LANGUAGES, {"default": "auto", "tooltip": "Language the model writes in. input language: the caption's / keywords' language. english: always English (translated). auto: English for English-only encoders (CLIP, T5: SD, FLUX.1, SD3), the input's language for multilingual ones (Qwen, Mistral, Gemma: Qwen-Image, Z-Image, FLUX.2, Sana)."}),
            },
        }

    def expand(self, mode, preset, custom_instruction, seed, max_new_tokens, temperature, token_budget,
               fixed_text, language_model=None, keywords=None, text="", pipeline=None, image_encoder=None,
               target="auto", tokenizer="auto", output_language="auto"):
        if mode == "fixed":
            if not fixed_text:
                raise ValueError("mode is 'fixed' but fixed_text is empty: run once in generate mode and paste the shown text into fixed_text")
            return {"ui": {"text": [fixed_text]}, "result": (fixed_text, "")}
        if mode != "generate":
            raise ValueError(f"mode must be 'generate' or 'fixed', got {mode!r}")
        if language_model is None:
            raise ValueError("mode 'generate' needs a language model: connect the 'language_model' input (Load Language Model) or switch mode to 'fixed'")
        from ..core.language_model import expand
        from ..core.prompt_targets import effective_budget, resolve_target, token_counter

        source = ", ".join(p for p in ((keywords.as_string() if keywords else ""), (text or "").strip()) if p)
        resolved = resolve_target(target, pipeline)
        count, _ = token_counter(resolved, tokenizer, image_encoder)
        result = expand(language_model, source, preset=preset, custom_instruction=custom_instruction,
                        seed=seed, max_new_tokens=max_new_tokens, temperature=temperature,
                        token_budget=effective_budget(resolved, token_budget), count_tokens=count,
                        target=resolved.target, encoder=resolved.encoder, weighted=resolved.weighted,
                        output_language=output_language)
        return {"ui": {"text": [result.text]}, "result": (result.text, result.thinking)}


NODE_CLASS_MAPPINGS = {
    "LLMAssistBuildPrompt": LLMAssistBuildPrompt,
    "LLMAssistLoadLanguageModel": LLMAssistLoadLanguageModel,
    "LLMAssistExpandPrompt": LLMAssistExpandPrompt,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LLMAssistBuildPrompt": "Build Prompt",
    "LLMAssistLoadLanguageModel": "Load Language Model",
    "LLMAssistExpandPrompt": "Expand Prompt",
}
