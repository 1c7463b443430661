"""Model-server backends for the LLMA_CAPTIONER and LLMA_LANGUAGE_MODEL sockets.

``ServerCaptioner`` and ``ServerLanguageModel`` are small frozen dataclasses of settings only
(base URL, model name, ServerOptions): they pickle, and a Ray worker rebuilds the same backend
from them (``ServerCaptioner(base_url, model, options)``). core.captioning.caption_images and
core.language_model.generate_text hand them their work, so every node that takes those sockets
works with either backend.

Captioning sends one chat request per image (the image as a base64 data URL, downscaled to
``max_side``), ``concurrency`` at a time, and returns the captions in the images' order. Progress
moves per streamed token; Cancel closes every open stream within a token and raises the host's
interrupt. Sampling comes from the connection (temperature, seed, stop strings): the nodes' own
do_sample / temperature / seed widgets do not apply to a server backend; their max_new_tokens does.
"""
from __future__ import annotations

import base64
import contextvars
import io
import logging
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from . import host
from .model_server import Cancelled, CancelScope, ServerOptions, chat, list_models, normalize_base_url

log = logging.getLogger(__name__)


def image_data_url(image, max_side: int = 1024, image_format: str = "png") -> str:
    """A PIL image as a ``data:image/...;base64,`` URL, downscaled so its longest side <= max_side."""
    from PIL import Image

    image = image.convert("RGB")
    if max(image.size) > max_side:
        scale = max_side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)
    buffer = io.BytesIO()
    if image_format == "jpeg":
        image.save(buffer, format="JPEG", quality=90)
    else:
        image.save(buffer, format="PNG")
    return f"data:image/{image_format};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


class _Progress:
    """One bar over all requests x max_tokens, updated from worker threads (under a lock); inside
    ComfyUI the answers so far are shown on the node as they stream (host.progress_text)."""

    def __init__(self, count: int, max_tokens: int, label: str):
        self.max_tokens = max(int(max_tokens), 1)
        self.total = max(count, 1) * self.max_tokens
        self.done = [0] * count
        self.texts = [""] * count
        self.lock = threading.Lock()
        self.bar = host.progress(self.total, label)

    def token(self, index: int, n: int, piece: str = "") -> None:
        with self.lock:
            self.done[index] = min(n, self.max_tokens)
            self.texts[index] += piece
            self.bar.update_absolute(sum(self.done), self.total)
            if piece:
                shown = self.texts if len(self.texts) > 1 else None
                host.progress_text("\n".join(f"{i + 1}: {t}" for i, t in enumerate(shown)) if shown else self.texts[0])

    def finish(self, index: int) -> None:
        self.token(index, self.max_tokens)


def run_requests(base_url: str, model: str, options: ServerOptions, message_lists: list, max_tokens: int,
                 label: str, on_result=None) -> list[str]:
    """One streamed chat per message list, ``options.concurrency`` at a time; texts in order.

    ``on_result(index, text)`` is called as each finishes. On Cancel every open stream is cut (within
    about 0.1 s, even one still waiting for its first token) and the host's interrupt is raised; on
    the first error the others are cancelled the same way and that error is raised.
    """
    count = len(message_lists)
    if not count:
        return []
    host.check_interrupt()
    progress = _Progress(count, max_tokens, label)
    cancel = CancelScope()
    results: list = [None] * count

    def one(index: int) -> None:
        if cancel.is_set():
            raise Cancelled()
        text = chat(base_url, model, message_lists[index], options, max_tokens=max_tokens,
                    on_token=lambda n, piece: progress.token(index, n, piece), cancel=cancel)
        results[index] = text
        progress.finish(index)
        if on_result is not None:
            on_result(index, text)

    workers = min(int(options.concurrency), count)
    # requests run in worker threads even one at a time: this thread watches for Cancel and cuts
    # the open streams, so a request still waiting for its first token stops at once too
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llma-server") as pool:
        # each task runs in a copy of this context: inside ComfyUI the progress hook finds the node
        futures = [pool.submit(contextvars.copy_context().run, one, i) for i in range(count)]
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.1, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if host.interrupted() or failed:
                cancel.set()
                for f in pending:
                    f.cancel()
                wait(pending)
                break
    errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
    for exc in errors:  # ComfyUI's own interrupt (its progress hook raises it in a worker)
        if isinstance(exc, host.interrupt_exception_types()):
            raise exc
    if host.interrupted() or (errors and all(isinstance(e, Cancelled) for e in errors)):
        host.check_interrupt()
        raise host.Interrupted("processing interrupted by the user")
    for exc in errors:  # the first real failure; the others were cancelled because of it
        if not isinstance(exc, Cancelled):
            raise exc
    return results


@dataclass(frozen=True)
class ServerCaptioner:
    """A captioner on an OpenAI-compatible server (the LLMA_CAPTIONER payload); settings only."""

    base_url: str
    model: str
    options: ServerOptions = field(default_factory=ServerOptions)
    family = "server"
    cache_key = None

    def __post_init__(self):
        object.__setattr__(self, "base_url", normalize_base_url(self.base_url))

    @property
    def name(self) -> str:
        return f"{self.model} @ {self.base_url}"

    def messages(self, image, instruction: str) -> list:
        url = image_data_url(image, int(self.options.max_side), self.options.image_format)
        return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                             {"type": "text", "text": instruction}]}]

    def caption(self, images, settings=None, on_batch=None) -> list[str]:
        """One caption per image, in order (``on_batch(index, [caption])`` as each finishes)."""
        from .captioning import CaptionSettings, instruction_for, to_pil_list
        from .text_generation import clean_generated_text

        settings = settings or CaptionSettings()
        if settings.num_beams > 1 or settings.do_sample:
            log.info("%s: num_beams / do_sample do not apply to a model server (its temperature and seed come "
                     "from Connect Model Server)", self.name)
        instruction = instruction_for("chat", settings)
        pil = to_pil_list(images)
        lists = [self.messages(im, instruction) for im in pil]
        callback = None if on_batch is None else (lambda i, text: on_batch(i, [clean_generated_text(text, prompt=instruction)]))
        texts = run_requests(self.base_url, self.model, self.options, lists, settings.max_new_tokens,
                             f"caption {self.model}", on_result=callback)
        return [clean_generated_text(t, prompt=instruction) for t in texts]

    def available_models(self) -> list[str]:
        return list_models(self.base_url, self.options)


@dataclass(frozen=True)
class ServerLanguageModel:
    """A language model on an OpenAI-compatible server (the LLMA_LANGUAGE_MODEL payload); settings only."""

    base_url: str
    model: str
    options: ServerOptions = field(default_factory=ServerOptions)
    cache_key = None
    has_chat_template = True

    def __post_init__(self):
        object.__setattr__(self, "base_url", normalize_base_url(self.base_url))

    @property
    def name(self) -> str:
        return f"{self.model} @ {self.base_url}"

    def generate(self, instruction: str, text: str, *, max_new_tokens: int = 64) -> str:
        """The raw text the server writes for system=instruction, user=text."""
        messages = [{"role": "system", "content": instruction}, {"role": "user", "content": text}]
        return run_requests(self.base_url, self.model, self.options, [messages], max_new_tokens,
                            f"expand {self.model}")[0]


def connect(base_url: str, model: str, options: ServerOptions = ServerOptions(), *, check: bool = True):
    """(ServerCaptioner, ServerLanguageModel, models listed by the server) for one connection.

    An empty ``model`` picks the server's first listed model. With ``check`` the server is asked
    for its models now: unreachable, a refused key or a model it does not have is an error here.
    """
    from .model_server import ModelServerError

    base = normalize_base_url(base_url)
    model = (model or "").strip()
    models: list[str] = []
    if check or not model:
        models = list_models(base, options)
        if not model:
            if not models:
                raise ModelServerError(f"model is empty and {base} lists no models: type the model name")
            model = models[0]
        elif models and model not in models:
            raise ModelServerError(f"model {model!r} is not one {base} serves; it has: {models}: type one of them in model")
    return ServerCaptioner(base, model, options), ServerLanguageModel(base, model, options), models
