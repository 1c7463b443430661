"""How many new tokens a model can still write: its context length minus the prompt.

``generate`` with a prompt plus ``max_new_tokens`` longer than a learned-position model's
context (GPT-2, BLIP's text decoder, ViT-GPT2) fails with a bare ``IndexError``; cutting the
prompt instead would drop the instruction. So: the prompt is kept whole, ``max_new_tokens`` is
clamped to what fits (logged), and a prompt that alone fills the context is a clear error.
Imports nothing heavy.
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)

_LENGTH_ATTRS = ("max_position_embeddings", "n_positions", "max_sequence_length")


class PromptTooLong(ValueError):
    """The prompt alone fills the model's context (nothing is cut from it)."""


def context_length(config) -> int | None:
    """Tokens the (text) decoder can attend to, from a transformers config; None when unknown."""
    for part in (getattr(config, "decoder", None), getattr(config, "text_config", None), config):
        for attr in _LENGTH_ATTRS:
            value = getattr(part, attr, None) if part is not None else None
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def clamp_new_tokens(config, prompt_tokens: int, max_new_tokens: int, name: str) -> int:
    """``max_new_tokens``, or less so that prompt + new tokens fit the context (logged).

    Raises ValueError when the prompt alone fills the context (nothing is cut from it).
    """
    limit = context_length(config)
    if limit is None or prompt_tokens + max_new_tokens <= limit:
        return int(max_new_tokens)
    room = limit - int(prompt_tokens)
    if room < 1:
        raise PromptTooLong(
            f"the prompt is {prompt_tokens} tokens (instruction and text) but {name} reads at most {limit}: "
            "shorten the text or the instruction, or use a model with a longer context")
    log.warning("max_new_tokens %d is more than %s can write after a %d-token prompt (context %d tokens): "
                "writing at most %d", max_new_tokens, name, prompt_tokens, limit, room)
    return room
