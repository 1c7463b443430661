"""Causal language models (models/LLM) for prompt expansion and the ``llm`` keyword method.

Loading follows the pack's policy (core.hf_loading: local first, allow_download, safetensors,
trust_remote_code off, device/dtype/quantization) and goes through MODEL_CACHE. Generation uses
the tokenizer's chat template when it has one (e.g. Qwen2 ChatML) and plain completion otherwise
(e.g. GPT-2); it is seeded, reports progress per token and stops on Cancel within one token.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from . import faults, hf_loading, host
from .context_limits import clamp_new_tokens
from . import model_cache
from .model_cache import MODEL_CACHE
from .text_generation import clean_generated_text, make_stopping_criteria, sampling, split_thinking

log = logging.getLogger(__name__)

PRESETS: dict[str, str] = {
    "sd prompt": (
        "Rewrite the following as one Stable Diffusion prompt: a comma-separated list of vivid visual "
        "details (subject, setting, lighting, style, quality tags). Answer with the prompt only."
    ),
    "cinematic": (
        "Rewrite the following as a cinematic image prompt: describe the shot, lens, lighting, colour "
        "grading and mood in one comma-separated line. Answer with the prompt only."
    ),
    "concise": "Rewrite the following as a short, concrete image prompt of at most 20 words. Answer with the prompt only.",
    "detailed": (
        "Expand the following into a detailed image description of two or three sentences covering "
        "subject, setting, colours and lighting. Answer with the description only."
    ),
    "image paragraph": (  # FLUX, Qwen-Image, Z-Image, SD3, Chroma: encoders that read sentences
        "Rewrite the following as one prompt for a text-to-image model that reads natural language: one "
        "flowing paragraph of full sentences, the main subject first, then its setting, composition, lighting, "
        "colours and style. No tag lists and no weights in brackets. Answer with the prompt only."
    ),
    "video motion": (  # Wan, LTX: motion and camera
        "Rewrite the following as one prompt for a text-to-video model: one paragraph in the present tense "
        "that describes the subject and how it moves, the camera's movement (static, pan, tilt, dolly, tracking, "
        "orbit) and framing, then lighting and atmosphere. Answer with the prompt only."
    ),
}
CUSTOM = "custom"
AUTO = "auto"  # the connected pipeline's family: tags -> 'sd prompt', natural / json -> 'image paragraph'
PRESET_NAMES = list(PRESETS) + [CUSTOM, AUTO]
PRESET_FOR_TARGET = {"tags": "sd prompt", "natural": "image paragraph", "json": "image paragraph"}
# Output language: 'auto' writes English for English-only encoders (CLIP, T5) and keeps the input's
# language for multilingual ones (Qwen, Mistral, Gemma: core.prompt_targets.MULTILINGUAL).
OUTPUT_LANGUAGES = ("auto", "input language", "english")
LANGUAGE_INSTRUCTIONS = {
    "input language": " Write in the same language as the input.",
    "english": " Write in English; translate anything that is not English.",
}


@dataclass(frozen=True, eq=False)
class LanguageModel:
    """A loaded causal LM (the LLMA_LANGUAGE_MODEL payload)."""

    model: Any
    tokenizer: Any
    name: str
    device: Any
    cache_key: Any = None

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def _ensure_device(self) -> None:
        model_cache.prepare(self)  # reload if ComfyUI unloaded it; load through ComfyUI's memory manager
        param = next(self.model.parameters(), None)
        if param is not None and param.device.type != self.device.type:
            self.model.to(self.device)


def load_language_model(name: str, options: hf_loading.LoadOptions = hf_loading.LoadOptions()) -> LanguageModel:
    """Load (or fetch from the cache) a causal LM folder from models/LLM, or an allowed repo id."""
    source = hf_loading.resolve_source("LLM", name, options.allow_download)
    device, dtype, key = hf_loading.plan_load("language_model", source, options)

    def load():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            model, tokenizer = hf_loading.from_pretrained_pair(
                AutoModelForCausalLM, AutoTokenizer, source, options, dtype, device)
        except ValueError as exc:
            if "Unrecognized configuration" in str(exc) or "AutoModelForCausalLM" in str(exc):
                raise ValueError(
                    f"{source} is not a causal language model (text generation): pick a model such as "
                    "Qwen2 / Llama / GPT-2 in models/LLM (captioners go to Load Captioner)"
                ) from exc
            raise
        model = hf_loading.place_and_quantize(model, options, device, dtype)
        display = source.replace("\\", "/").rstrip("/").split("/")[-1]
        return LanguageModel(model, tokenizer, display, device, key)

    lm = MODEL_CACHE.get_or_load(key, load, keep_loaded=options.keep_loaded, offload=_offload)
    return lm


def _offload(lm: LanguageModel) -> None:
    lm.model.to("cpu")


def build_model_input(lm: LanguageModel, instruction: str, text: str) -> str:
    """The text the model sees: chat template (system = instruction) or a plain completion prompt."""
    if lm.has_chat_template:
        messages = [{"role": "system", "content": instruction}, {"role": "user", "content": text}]
        try:
            return lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception:  # noqa: BLE001 - some templates refuse a system role
            merged = [{"role": "user", "content": f"{instruction}\n\n{text}"}]
            return lm.tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)
    return f"{instruction}\n\nInput: {text}\nOutput:"


def generate_text(
    lm: LanguageModel,
    instruction: str,
    text: str,
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    seed: int = 0,
    top_p: float = 0.95,
    with_thinking: bool = False,
):
    """Generate from ``instruction`` + ``text``; the cleaned new text (greedy when temperature is 0).

    ``with_thinking``: return ``(text, thinking)``, the reasoning model's ``<think>`` text split off
    (core.text_generation.split_thinking) instead of being dropped.
    Raises host.Interrupted when the user cancels; the model stays usable for the next call.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}: use 0 for greedy decoding")
    from .server_models import ServerLanguageModel

    if isinstance(lm, ServerLanguageModel):  # a model server: sampling comes from the connection
        raw = lm.generate(instruction, text, max_new_tokens=max_new_tokens)
        if with_thinking:
            answer, thinking = split_thinking(raw)
            return clean_generated_text(answer, prompt=text), thinking
        return clean_generated_text(raw, prompt=text)
    import torch

    host.check_interrupt()
    lm._ensure_device()
    prompt = build_model_input(lm, instruction, text)
    tok = lm.tokenizer
    inputs = tok(prompt, return_tensors="pt", add_special_tokens=not lm.has_chat_template)
    inputs = {k: v.to(lm.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
    # the prompt (with the instruction) stays whole: fewer new tokens, or a clear error
    max_new_tokens = clamp_new_tokens(lm.model.config, inputs["input_ids"].shape[1], max_new_tokens, lm.name)
    prompt_len = inputs["input_ids"].shape[1]

    def show(sequences):  # the text so far on the node (inside ComfyUI)
        host.progress_text(tok.decode(sequences[0, prompt_len:], skip_special_tokens=True))

    stopping, raise_if_interrupted = make_stopping_criteria(
        max_new_tokens, host.progress(max_new_tokens, "expand"), on_tokens=show if host.in_comfyui() else None)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    kwargs = dict(max_new_tokens=max_new_tokens, stopping_criteria=stopping, pad_token_id=pad)
    # a per-call generator: torch's global RNG is neither read nor reseeded
    sample_kwargs, private_rng = sampling(temperature > 0, 1, [seed], temperature, top_p,
                                         int(getattr(getattr(lm.model, "generation_config", None), "top_k", 0) or 0))
    if temperature > 0:
        kwargs.update(sample_kwargs)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    try:
        faults.maybe_raise("oom")
        with torch.inference_mode(), private_rng:
            out = lm.model.generate(**inputs, **kwargs)
    except Exception as exc:  # noqa: BLE001 - OOM is translated, the rest re-raised
        if not faults.is_oom(exc):
            raise
        inputs = stopping = None
        host.empty_cache()
        raise ValueError(f"out of memory generating with {lm.name}: lower max_new_tokens (now {max_new_tokens}) or "
                         "shorten the input text, or load the model with dtype fp16/bf16 or quantization") from None
    raise_if_interrupted()
    new = out[0, inputs["input_ids"].shape[1]:]
    decoded = tok.decode(new, skip_special_tokens=True)
    if not with_thinking:
        return clean_generated_text(decoded, prompt=text)
    answer, thinking = split_thinking(decoded)
    if not thinking:  # <think> may be a special token that decoding skipped: look again with them kept
        raw_answer, raw_thinking = split_thinking(tok.decode(new, skip_special_tokens=False))
        if raw_thinking:
            for special in getattr(tok, "all_special_tokens", ()):
                raw_answer = raw_answer.replace(special, " ")
                raw_thinking = raw_thinking.replace(special, " ")
            answer, thinking = raw_answer, raw_thinking.strip()
    return clean_generated_text(answer, prompt=text), thinking


def instruction_for(preset: str, custom_instruction: str = "") -> str:
    preset = (preset or "").strip().lower()
    if preset == CUSTOM:
        if not (custom_instruction or "").strip():
            raise ValueError("preset is 'custom' but custom_instruction is empty: write an instruction or pick a preset")
        return custom_instruction.strip()
    if preset == AUTO:  # without a target: the SD preset (Expand Prompt resolves auto by the pipeline)
        preset = PRESET_FOR_TARGET["tags"]
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESET_NAMES}, got {preset!r}")
    return PRESETS[preset]


@dataclass(frozen=True)
class Expansion:
    """What Expand Prompt returns: the prompt, the model's thinking ("" when none), notes for the user."""

    text: str
    thinking: str = ""
    notes: tuple[str, ...] = ()


def language_instruction(output_language: str = "auto", encoder: str = "clip") -> str:
    """The sentence appended to the instruction for ``output_language`` (see OUTPUT_LANGUAGES)."""
    if output_language not in OUTPUT_LANGUAGES:
        raise ValueError(f"output_language must be one of {list(OUTPUT_LANGUAGES)}, got {output_language!r}")
    if output_language == "auto":
        from .prompt_targets import MULTILINGUAL

        output_language = "input language" if encoder in MULTILINGUAL else "english"
    return LANGUAGE_INSTRUCTIONS[output_language]


def expand(
    lm: LanguageModel,
    text: str,
    *,
    preset: str = "sd prompt",
    custom_instruction: str = "",
    seed: int = 0,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    token_budget: int = 77,
    count_tokens: Callable[[str], int] | None = None,
    target: str = "tags",
    encoder: str = "clip",
    weighted: bool = True,
    output_language: str = "auto",
) -> Expansion:
    """``expand_prompt`` for a prompt ``target`` (core.prompt_targets), keeping the model's thinking.

    preset 'auto' picks PRESET_FOR_TARGET[target]; the output-language sentence is appended to the
    instruction; ``(term:1.2)`` syntax the model wrote is converted to plain text when the target is
    not weighted tags (``notes`` says so).
    """
    from .prompt_builder import fit_text_to_budget

    text = (text or "").strip()
    if not text:
        raise ValueError("text is empty: connect keywords or type the text to expand")
    if (preset or "").strip().lower() == AUTO:
        preset = PRESET_FOR_TARGET.get(target, "sd prompt")
    instruction = instruction_for(preset, custom_instruction) + language_instruction(output_language, encoder)
    generated, thinking = generate_text(lm, instruction, text, max_new_tokens=max_new_tokens,
                                        temperature=temperature, seed=seed, with_thinking=True)
    generated = " ".join(generated.split())
    notes: list[str] = []
    if not generated:
        log.warning("%s wrote nothing usable; returning the input text", lm.name)
        notes.append("the model wrote no prompt (only thinking, or nothing): the input text is returned")
        generated = text
    if not (target == "tags" and weighted):
        from .diffusion.prompt_embeds import has_weights, plain_text

        if has_weights(generated):
            generated = " ".join(plain_text(generated).split())
            notes.append(f"converted (term:1.2) weight syntax to plain text for the {encoder} encoder")
            log.info("%s wrote (term:1.2) weights; converted to plain text for the %s encoder", lm.name, encoder)
    return Expansion(fit_text_to_budget(generated, token_budget, count_tokens), thinking, tuple(notes))


def expand_prompt(
    lm: LanguageModel,
    text: str,
    *,
    preset: str = "sd prompt",
    custom_instruction: str = "",
    seed: int = 0,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    token_budget: int = 77,
    count_tokens: Callable[[str], int] | None = None,
) -> str:
    """A richer prompt for ``text``, cleaned and cut at a comma/word boundary to fit ``token_budget``.

    When the model writes nothing usable the input text is returned (also fitted to the budget).
    """
    from .prompt_builder import fit_text_to_budget

    text = (text or "").strip()
    if not text:
        raise ValueError("text is empty: connect keywords or type the text to expand")
    instruction = instruction_for(preset, custom_instruction)
    generated = generate_text(lm, instruction, text, max_new_tokens=max_new_tokens,
                              temperature=temperature, seed=seed)
    generated = " ".join(generated.split())
    if not generated:
        log.warning("%s wrote nothing usable; returning the input text", lm.name)
        generated = text
    return fit_text_to_budget(generated, token_budget, count_tokens)
