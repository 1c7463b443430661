"""Weighted prompts -> CLIP prompt embeddings (SD 1.x / 2.x and SDXL text encoders), with an LRU cache.

Syntax (ComfyUI's, plus A1111's square brackets):
``(term)`` x1.1, ``((term))`` x1.21, ``(term:1.3)`` sets the weight (times any outer weight),
``[term]`` /1.1, ``\\(`` ``\\)`` ``\\[`` ``\\]`` ``\\\\`` are literal characters.

Encoding: the prompt is tokenized piece by piece, the token sequence is cut into chunks of
``model_max_length - 2`` tokens (75 for CLIP), each chunk is wrapped in BOS/EOS and padded
like the pipeline's own tokenizer call, encoded, each token's embedding is scaled by its
weight and the chunk is rescaled to keep its original mean (the A1111 / compel approach).
Chunks are concatenated along the sequence, so prompts longer than 77 tokens are not cut off.
When every weight is 1 the text is tokenized in one go, exactly as ``pipe.encode_prompt``
does, so the embeddings are identical to diffusers' own. SDXL (two text encoders, pooled
embeddings): see ``encode_weighted_sdxl``.
"""
from __future__ import annotations

import logging
import re
import threading
import weakref
from collections import OrderedDict

from ..hosted_model import on_unload

log = logging.getLogger(__name__)

UP = 1.1
_TOKEN = re.compile(r"\\[()\[\]\\]|\\|\(|\[|:\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*\)|\)|\]|[^\\()\[\]:]+|:")


def parse_weighted(text: str) -> list[tuple[str, float]]:
    """``"a (red:1.2) cat"`` -> ``[("a ", 1.0), ("red", 1.2), (" cat", 1.0)]`` (adjacent equal weights merged)."""
    pieces: list[list] = []  # [text, weight]
    round_open: list[int] = []
    square_open: list[int] = []

    def scale(start: int, factor: float) -> None:
        for piece in pieces[start:]:
            piece[1] *= factor

    for match in _TOKEN.finditer(text or ""):
        token, number = match.group(0), match.group(1)
        if token.startswith("\\") and len(token) == 2:
            pieces.append([token[1], 1.0])
        elif token == "(":
            round_open.append(len(pieces))
        elif token == "[":
            square_open.append(len(pieces))
        elif number is not None and round_open:
            scale(round_open.pop(), float(number))
        elif token == ")" and round_open:
            scale(round_open.pop(), UP)
        elif token == "]" and square_open:
            scale(square_open.pop(), 1.0 / UP)
        elif number is not None:  # "(…:1.2)" closing without an opening: keep the text
            pieces.append([token, 1.0])
        else:
            pieces.append([token, 1.0])
    for start in round_open:  # unclosed brackets still weight what follows, like ComfyUI/A1111
        scale(start, UP)
    for start in square_open:
        scale(start, 1.0 / UP)

    merged: list[tuple[str, float]] = []
    for piece_text, weight in pieces:
        if not piece_text:
            continue
        if merged and abs(merged[-1][1] - weight) < 1e-9:
            merged[-1] = (merged[-1][0] + piece_text, merged[-1][1])
        else:
            merged.append((piece_text, weight))
    return merged


def plain_text(text: str) -> str:
    """The prompt with the weight syntax removed (for pipelines without weighted embeddings)."""
    return "".join(t for t, _ in parse_weighted(text))


def has_weights(text: str) -> bool:
    return any(abs(w - 1.0) > 1e-9 for _, w in parse_weighted(text))


def supports_weighted(pipe) -> bool:
    """True for pipelines with one CLIP text encoder (SD 1.x / 2.x families)."""
    return (
        getattr(pipe, "text_encoder", None) is not None
        and getattr(pipe, "tokenizer", None) is not None
        and getattr(pipe, "text_encoder_2", None) is None
        and hasattr(pipe, "encode_prompt")
        and hasattr(pipe.text_encoder, "config")
    )


def _token_weights(tokenizer, text: str) -> tuple[list[int], list[float]]:
    pieces = parse_weighted(text)
    if all(abs(w - 1.0) < 1e-9 for _, w in pieces):
        ids = tokenizer("".join(t for t, _ in pieces), add_special_tokens=False).input_ids
        return list(ids), [1.0] * len(ids)
    ids: list[int] = []
    weights: list[float] = []
    for piece, weight in pieces:
        piece_ids = tokenizer(piece, add_special_tokens=False).input_ids
        ids.extend(piece_ids)
        weights.extend([weight] * len(piece_ids))
    return ids, weights


def _chunks(tokenizer, ids, weights, n_chunks: int | None = None):
    size = tokenizer.model_max_length - 2
    chunks = [(ids[i : i + size], weights[i : i + size]) for i in range(0, len(ids), size)] or [([], [])]
    if n_chunks is not None:
        chunks += [([], [])] * (n_chunks - len(chunks))
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    out = []
    for chunk_ids, chunk_w in chunks:
        full = [bos, *chunk_ids, eos]
        full_w = [1.0, *chunk_w, 1.0]
        fill = tokenizer.model_max_length - len(full)
        mask = [1] * len(full) + [0] * fill
        out.append((full + [pad] * fill, full_w + [1.0] * fill, mask))
    return out


def _apply_weights(z, weights):
    """Scale each token's embedding ``z[:, i]`` by ``weights[i]`` and restore the mean when mild."""
    import torch

    if not any(abs(w - 1.0) > 1e-9 for w in weights):
        return z
    w = torch.tensor(weights, dtype=z.dtype, device=z.device).view(1, -1, 1)
    original_mean = z.float().mean()
    z = z * w
    new_mean = z.float().mean()
    ratio = original_mean / new_mean if new_mean.abs() > 1e-6 else torch.tensor(float("inf"))
    # Keep the original mean (as A1111 does) only when that is a mild correction: with a
    # mean near zero (small or random encoders) the ratio explodes and the UNet gives NaN.
    if torch.isfinite(ratio) and 0.5 <= float(ratio) <= 2.0:
        z = z * ratio.to(z.dtype)
    return z


def _encode_chunks(pipe, chunks, device, clip_skip):
    import torch

    encoder = pipe.text_encoder
    use_mask = bool(getattr(encoder.config, "use_attention_mask", False))
    embeds = []
    for ids, weights, mask in chunks:
        ids_t = torch.tensor([ids], dtype=torch.long, device=device)
        mask_t = torch.tensor([mask], dtype=torch.long, device=device) if use_mask else None
        if clip_skip:
            layers = int(getattr(encoder.config, "num_hidden_layers", 0) or 0)
            if layers and clip_skip >= layers:
                raise ValueError(f"clip_skip is {clip_skip} but the text encoder has {layers} layers: use 0..{layers - 1}")
            hidden =  encoder(ids_t, attention_mask=mask_t, output_hidden_states=True)[-1][-(clip_skip + 1)]
            # transformers >= 5.6 flattens CLIPTextModel (no .text_model); diffusers' own
            # clip_skip path still looks for text_model and fails there.
            z = getattr(encoder, "text_model", encoder).final_layer_norm(hidden)
        else:
            z = encoder(ids_t, attention_mask=mask_t)[0]
        embeds.append(_apply_weights(z, weights))
    dtype = encoder.dtype if encoder is not None else embeds[0].dtype
    return torch.cat(embeds, dim=1).to(dtype=dtype, device=device)


def encode_weighted(pipe, prompt: str, negative: str = "", clip_skip: int = 0, device=None):
    """``(prompt_embeds, negative_prompt_embeds)`` ``[1, 77*k, D]`` honouring weights (not cached)."""
    import torch

    device = device if device is not None else pipe._execution_device
    tokenizer = pipe.tokenizer
    pos_ids, pos_w = _token_weights(tokenizer, prompt)
    neg_ids, neg_w = _token_weights(tokenizer, negative or "")
    size = tokenizer.model_max_length - 2
    n = max(1, -(-len(pos_ids) // size), -(-len(neg_ids) // size))
    with torch.no_grad():
        pe = _encode_chunks(pipe, _chunks(tokenizer, pos_ids, pos_w, n), device, clip_skip)
        npe = _encode_chunks(pipe, _chunks(tokenizer, neg_ids, neg_w, n), device, clip_skip)
    return pe, npe


def supports_weighted_sdxl(pipe) -> bool:
    """True for SDXL-type pipelines (a second, projecting CLIP text encoder; the refiner has only it)."""
    return (
        getattr(pipe, "text_encoder_2", None) is not None
        and getattr(pipe, "tokenizer_2", None) is not None
        and hasattr(pipe, "encode_prompt")
    )


def _sdxl_encoders(pipe):
    pairs = [(pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)]
    return [(tok, enc) for tok, enc in pairs if tok is not None and enc is not None]


def _sdxl_forward(encoder, ids, device, clip_skip):
    """(hidden state ``-(clip_skip + 2)`` [1,77,D], pooled text_embeds [1,P] or None), as diffusers' SDXL."""
    import torch

    out = encoder(torch.tensor([ids], dtype=torch.long, device=device), output_hidden_states=True)
    states = out.hidden_states
    if clip_skip + 2 > len(states):
        raise ValueError(
            f"clip_skip is {clip_skip} but the SDXL text encoder has {len(states) - 1} layers: use 0..{len(states) - 2}"
        )
    pooled = out[0] if out[0].ndim == 2 else None
    return states[-(clip_skip + 2)], pooled


def _sdxl_side(pipe, text: str, token_weights, n: int, device, clip_skip: int):
    """One prompt side: (embeds [1, 77*n, sum D], pooled [1, P]) for the weighted ``text``."""
    import torch

    hidden, pooled = [], None
    for (tok, enc), (ids, weights) in zip(_sdxl_encoders(pipe), token_weights):
        parts = []
        for i, (chunk_ids, chunk_w, _mask) in enumerate(_chunks(tok, ids, weights, n)):
            z, chunk_pooled = _sdxl_forward(enc, chunk_ids, device, clip_skip)
            parts.append(_apply_weights(z, chunk_w))
            if i == 0 and pooled is None and chunk_pooled is not None:
                # Pooled from the unweighted plain text, first chunk (compel / A1111 do the same):
                # weights only scale hidden states, so the pooled output depends on the token ids
                # alone; re-tokenize the plain text in one go when the per-piece ids differ.
                plain_ids = tok(plain_text(text), add_special_tokens=False).input_ids
                plain_chunk = _chunks(tok, list(plain_ids), [1.0] * len(plain_ids), 1)[0][0]
                pooled = chunk_pooled if plain_chunk == chunk_ids else _sdxl_forward(enc, plain_chunk, device, clip_skip)[1]
        hidden.append(torch.cat(parts, dim=1))
    if pooled is None:
        raise ValueError(f"{type(pipe).__name__}'s text_encoder_2 gives no pooled embedding: it must be a CLIPTextModelWithProjection")
    return torch.cat(hidden, dim=-1), pooled


def encode_weighted_sdxl(pipe, prompt: str, negative: str = "", clip_skip: int = 0, device=None):
    """SDXL ``(prompt_embeds, negative_prompt_embeds, pooled, negative_pooled)`` honouring weights (not cached).

    Like diffusers' ``StableDiffusionXLPipeline.encode_prompt``: hidden state ``-(clip_skip + 2)``
    (penultimate by default) of both text encoders, concatenated on the feature axis
    ([1, 77*k, 768+1280] for SDXL base), and encoder 2's projected pooled output. Each encoder's
    hidden states get the per-token weights and the guarded mean restore of the SD path; long
    prompts are chunked like the SD path. The pooled embeddings come from the plain text without
    weights (first chunk), as compel and A1111 do: a pooled vector has no per-token axis to weight.
    An empty negative gives zeros when the pipeline's ``force_zeros_for_empty_prompt`` is set
    (what diffusers does when no negative prompt is passed). Unlike diffusers, ``clip_skip`` also
    applies to the negative. With every weight 1 and clip_skip 0 the result equals ``encode_prompt``.
    """
    import torch

    device = device if device is not None else pipe._execution_device
    clip_skip = int(clip_skip or 0)
    encoders = _sdxl_encoders(pipe)
    pos = [_token_weights(tok, prompt) for tok, _ in encoders]
    neg = [_token_weights(tok, negative or "") for tok, _ in encoders]
    n = max([1] + [-(-len(ids) // (tok.model_max_length - 2)) for (tok, _), (ids, _w) in zip(encoders * 2, pos + neg)])
    zero_negative = not (negative or "").strip() and bool(getattr(pipe.config, "force_zeros_for_empty_prompt", False))
    dtype = pipe.text_encoder_2.dtype
    with torch.no_grad():
        pe, pooled = _sdxl_side(pipe, prompt, pos, n, device, clip_skip)
        if zero_negative:
            npe, npooled = torch.zeros_like(pe), torch.zeros_like(pooled)
        else:
            npe, npooled = _sdxl_side(pipe, negative or "", neg, n, device, clip_skip)
    return tuple(t.to(dtype=dtype, device=device) for t in (pe, npe, pooled, npooled))


class EmbeddingCache:
    """Prompt embeddings keyed by (text encoders, prompt, negative, clip skip, device), an LRU of
    ``size`` entries per text encoder that dies with it.

    ``get`` gives the SD 1.x/2.x pair, ``get_sdxl`` the SDXL four. The entries live in a
    ``WeakKeyDictionary`` keyed by the (last) text encoder module: when the pipeline goes, so do
    its embeddings (GPU tensors included); when its weights are unloaded (ComfyUI's memory
    manager, keep_loaded off) they are forgotten at once (``forget``).
    """

    def __init__(self, size: int = 64):
        self.size = size
        self._owners: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
        self._lock = threading.RLock()
        self.hits = 0
        self.misses = 0

    def _lookup(self, key, modules, compute):
        owner = modules[-1]
        with self._lock:
            items = self._owners.get(owner)
            if items is not None and key in items:
                items.move_to_end(key)
                self.hits += 1
                return items[key]
        value = compute()
        with self._lock:
            self.misses += 1
            items = self._owners.get(owner)
            if items is None:
                items = self._owners[owner] = OrderedDict()
            items[key] = value
            items.move_to_end(key)
            while len(items) > self.size:
                items.popitem(last=False)
        return value

    def forget(self, modules) -> None:
        """Drop the embeddings made with any of ``modules`` (their weights were unloaded)."""
        with self._lock:
            for module in modules:
                self._owners.pop(module, None)

    def get(self, pipe, prompt: str, negative: str = "", clip_skip: int = 0, device=None):
        encoder = pipe.text_encoder
        device = device if device is not None else pipe._execution_device
        key = (id(encoder), id(pipe.tokenizer), prompt, negative or "", int(clip_skip or 0), str(device), str(encoder.dtype))
        return self._lookup(key, (encoder,), lambda: encode_weighted(pipe, prompt, negative, clip_skip, device))

    def get_sdxl(self, pipe, prompt: str, negative: str = "", clip_skip: int = 0, device=None):
        """Cached ``encode_weighted_sdxl``: (prompt_embeds, negative_prompt_embeds, pooled, negative_pooled)."""
        device = device if device is not None else pipe._execution_device
        modules = tuple(m for _, m in _sdxl_encoders(pipe))
        zeros = bool(getattr(pipe.config, "force_zeros_for_empty_prompt", False))
        key = ("sdxl", *(id(m) for m in modules), id(pipe.tokenizer), id(pipe.tokenizer_2), prompt, negative or "",
               int(clip_skip or 0), str(device), str(pipe.text_encoder_2.dtype), zeros)
        return self._lookup(key, modules, lambda: encode_weighted_sdxl(pipe, prompt, negative, clip_skip, device))

    def clear(self) -> None:
        with self._lock:
            self._owners.clear()

    def __len__(self) -> int:
        with self._lock:
            return sum(len(items) for items in list(self._owners.values()))


EMBEDDING_CACHE = EmbeddingCache()


def _forget_unloaded(value, modules) -> None:
    EMBEDDING_CACHE.forget(modules)


on_unload(_forget_unloaded)


def count_tokens(tokenizer, text: str) -> int:
    """Tokens the prompt uses without BOS/EOS (weight syntax removed)."""
    return len(_token_weights(tokenizer, text)[0])
