"""Helpers shared by captioning and prompt expansion: cancel per token, progress per token,
seeding, and cleaning what a model wrote."""
from __future__ import annotations

import contextlib
import re

from . import host

_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)
_CHAT_TOKENS = re.compile(r"<\|[^|>]{1,40}\|>|</?s>|\[/?INST\]|<end_of_turn>|<start_of_turn>(user|model)?")
_ROLE_PREFIX = re.compile(r"^\s*(assistant|system|user|model)\s*[:\n]", re.IGNORECASE)
_PREAMBLE = re.compile(
    r"^\s*(sure|certainly|of course|okay|ok|here is|here's|here are)\b[^:\n]{0,80}[:\n]\s*",
    re.IGNORECASE,
)
_LABEL = re.compile(r"^\s*(caption|description|prompt|answer|output)\s*:\s*", re.IGNORECASE)


_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)


def split_thinking(text: str) -> tuple[str, str]:
    """``(answer, thinking)`` of a reasoning model's output; thinking is "" when there is none.

    ``<think>...</think>`` blocks go to thinking (several are joined by a blank line); an unclosed
    ``<think>`` makes the rest thinking (the answer is then empty); a ``</think>`` without an opening
    tag (chat templates that put ``<think>`` in the prompt, e.g. Qwen3) makes everything before it
    thinking. No text is lost: answer + thinking hold everything outside the tags (thoughts stripped of
    surrounding whitespace).
    """
    text = "" if text is None else str(text)
    thoughts: list[str] = []
    answer: list[str] = []
    opened = _THINK_OPEN.search(text)
    first_close = _THINK_CLOSE.search(text)
    if first_close and (not opened or first_close.start() < opened.start()):
        thoughts.append(text[:first_close.start()])
        text = text[first_close.end():]
    while True:
        opened = _THINK_OPEN.search(text)
        if not opened:
            answer.append(text)
            break
        answer.append(text[:opened.start()])
        rest = text[opened.end():]
        closed = _THINK_CLOSE.search(rest)
        if not closed:
            thoughts.append(rest)
            break
        thoughts.append(rest[:closed.start()])
        text = rest[closed.end():]
    thinking = "\n\n".join(t.strip() for t in thoughts if t.strip())
    return "".join(answer), thinking


def clean_generated_text(text: str, prompt: str = "") -> str:
    """Strip think blocks, chat tokens, role prefixes, polite preambles and an echoed prompt."""
    if text is None:
        return ""
    text = _THINK.sub("", str(text))
    text = _CHAT_TOKENS.sub(" ", text)
    prompt = (prompt or "").strip()
    if prompt and text.strip().lower().startswith(prompt.lower()):
        text = text.strip()[len(prompt):]
    for pattern in (_ROLE_PREFIX, _PREAMBLE, _LABEL):
        text = pattern.sub("", text, count=1)
    text = text.replace("\ufffd", "")
    text = "".join(ch for ch in text if ch.isprintable() or ch in "\n\t")
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA) for sampled generation."""
    import torch

    torch.manual_seed(int(seed) % (2**63))
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(int(seed) % (2**63))


def row_sampler(seeds, temperature: float, top_p: float = 1.0, top_k: int = 0):
    """A transformers ``LogitsProcessor`` that samples row ``i``'s next token with its own CPU
    ``torch.Generator`` seeded ``seeds[i]`` (temperature, top-k and top-p applied first, after the
    model's other processors) and leaves only that token possible, so greedy decoding emits the
    sample. The text then depends on the seed and the row's own input only, not on the batch
    size, and torch's global generator is neither read nor reseeded."""
    import torch
    from transformers import LogitsProcessor

    generators = [torch.Generator(device="cpu").manual_seed(int(s) % (2**63)) for s in seeds]

    class _RowSampler(LogitsProcessor):
        def __call__(self, input_ids, scores):
            logits = scores.float() / max(float(temperature), 1e-5)
            if top_k and 0 < int(top_k) < logits.shape[-1]:
                kth = torch.topk(logits, int(top_k), dim=-1).values[..., -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = torch.softmax(logits, dim=-1)
            if 0 < float(top_p) < 1:
                sorted_p, order = probs.sort(dim=-1, descending=True)
                sorted_p = sorted_p.masked_fill(sorted_p.cumsum(-1) - sorted_p > float(top_p), 0.0)
                probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
            probs = probs.cpu()
            out = torch.full_like(scores, float("-inf"))
            for row in range(scores.shape[0]):
                p = probs[row]
                if torch.isfinite(p).all() and float(p.sum()) > 0:
                    token = int(torch.multinomial(p, 1, generator=generators[row % len(generators)]))
                else:
                    token = int(torch.argmax(scores[row]))
                out[row, token] = 0.0
            return out

    return _RowSampler()


@contextlib.contextmanager
def private_rng(seed: int):
    """Run the block on a forked copy of torch's global RNG seeded ``seed``: the caller's
    random state is the same afterwards (for beam sampling, which has no per-row hook)."""
    import torch

    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed) % (2**63))
        yield


def sampling(do_sample: bool, num_beams: int, seeds, temperature: float, top_p: float, top_k: int = 0):
    """``(generate kwargs, context manager)`` for seeded sampling that never reseeds torch's
    global generator: per-row generators (``row_sampler``) for plain sampling, a private RNG
    for beam sampling, nothing for greedy / beam search."""
    if not do_sample:
        return {}, contextlib.nullcontext()
    if int(num_beams) > 1:
        return {"do_sample": True, "temperature": float(temperature), "top_p": float(top_p)}, private_rng(list(seeds)[0])
    from transformers import LogitsProcessorList

    kwargs = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None,
              "logits_processor": LogitsProcessorList([row_sampler(seeds, temperature, top_p, top_k)])}
    return kwargs, contextlib.nullcontext()


def make_stopping_criteria(max_new_tokens: int, progress=None, on_tokens=None, text_interval: float = 0.25):
    """A transformers StoppingCriteriaList that reports progress per token and stops on Cancel.

    ``on_tokens(input_ids)``: called with the sequences so far at most every ``text_interval``
    seconds (the node shows the text so far with ``host.progress_text``).

    When the user cancels, generation stops within one token and ``raise_if_interrupted()``
    raises the host's interrupt after ``generate`` returned, so the model stays usable.
    """
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _InterruptAndProgress(StoppingCriteria):
        def __init__(self):
            self.steps = 0
            self.interrupted = False
            self.shown = 0.0

        def __call__(self, input_ids, scores, **kwargs):
            import time

            import torch

            self.steps += 1
            if progress is not None:
                progress.update_absolute(min(self.steps, max_new_tokens), max_new_tokens)
            if on_tokens is not None and time.monotonic() - self.shown >= text_interval:
                self.shown = time.monotonic()
                on_tokens(input_ids)
            if host.interrupted():
                self.interrupted = True
            return torch.full((input_ids.shape[0],), self.interrupted, dtype=torch.bool, device=input_ids.device)

    criterion = _InterruptAndProgress()

    def raise_if_interrupted():
        if criterion.interrupted:
            host.check_interrupt()
            raise host.Interrupted("processing interrupted by the user")

    return StoppingCriteriaList([criterion]), raise_if_interrupted
