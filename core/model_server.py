"""OpenAI-compatible model servers (Ollama, llama-server, LM Studio, vLLM, ``transformers serve``).

The HTTP client (``httpx2``, which huggingface_hub already brings, or ``httpx``) is imported on
first use, never at ComfyUI start-up. One pooled client per (base URL, timeout, concurrency) is
kept per process; the objects on the sockets (core.server_models) hold only their settings, so
they pickle and rebuild in a worker (Ray) without live sockets.

Security: every request first passes ``owner.check_server_url`` (loopback always; other hosts
only when the server owner lists them), redirects are not followed and proxy variables are
ignored, so a workflow cannot make this machine call a host the owner did not allow. The API
key is read from the owner's settings at request time and only ever put in the Authorization
header: it is not part of any object, repr, log line or error message.
"""
from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

from . import host, owner

log = logging.getLogger(__name__)

RETRY_STATUSES = (429, 502, 503, 504)
_CONTEXT_WORDS = ("context length", "context window", "maximum context", "context size", "too many tokens",
                  "prompt is too long", "input is too long", "exceeds the", "longer than the maximum")
SERVER_URLS = ("Ollama http://127.0.0.1:11434/v1, llama-server http://127.0.0.1:8080/v1, "
               "LM Studio http://127.0.0.1:1234/v1, vLLM / transformers serve http://127.0.0.1:8000/v1")


class ModelServerError(ValueError):
    """A model-server failure the user can act on (the message says how)."""


class Cancelled(Exception):
    """Internal: the stream was closed because the user pressed Cancel."""


class CancelScope:
    """A cancel flag that also cuts the streams open under it: a thread blocked reading one (the
    server still thinking, or busy with another request) wakes at once instead of at its next token."""

    def __init__(self):
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._open: set = set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()
        with self._lock:
            opened = list(self._open)
        for response in opened:
            _cut(response)

    @contextlib.contextmanager
    def track(self, response):
        with self._lock:
            self._open.add(response)
        if self.is_set():
            _cut(response)
        try:
            yield
        finally:
            with self._lock:
                self._open.discard(response)


def _cut(response) -> None:
    """Shut the response's socket down (safe from another thread; the pool then drops the connection)."""
    try:
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except Exception:  # noqa: BLE001 - already closed: nothing to cut
        pass


@dataclass(frozen=True)
class ServerOptions:
    """How to talk to the server (the Connect Model Server widgets)."""

    timeout: float = 120.0  # seconds without an answer (connect / between two chunks)
    max_retries: int = 2  # extra attempts for retryable failures only
    temperature: float = 0.0  # 0 = greedy
    seed: int = 0
    stop: tuple[str, ...] = ()
    max_side: int = 1024  # images are downscaled to this longest side
    image_format: str = "png"  # png or jpeg
    concurrency: int = 2  # requests in flight at once (one request per image)

    def __post_init__(self):
        if not self.timeout > 0:
            raise ValueError(f"timeout must be more than 0 seconds, got {self.timeout!r}")
        if int(self.max_retries) < 0:
            raise ValueError(f"max_retries must be 0 or more, got {self.max_retries!r}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature!r}: use 0 for greedy decoding")
        if int(self.max_side) < 16:
            raise ValueError(f"max_side must be at least 16 pixels, got {self.max_side!r}")
        if self.image_format not in ("png", "jpeg"):
            raise ValueError(f"image_format must be 'png' or 'jpeg', got {self.image_format!r}")
        if int(self.concurrency) < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency!r}")

    @property
    def deterministic(self) -> bool:
        """Temperature 0 (greedy) with a fixed seed: the same request gives the same answer."""
        return float(self.temperature) == 0.0


def normalize_base_url(url: str, what: str = "base_url") -> str:
    """The allowed OpenAI base URL (ending in /v1 when no path was given; a pasted
    .../chat/completions or .../models is cut back to the base)."""
    text = owner.check_server_url(url, what)
    parts = urlsplit(text)
    path = parts.path.rstrip("/")
    for tail in ("/chat/completions", "/completions", "/models"):
        if path.endswith(tail):
            path = path[: -len(tail)]
    if not path:
        path = "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


# ---------------------------------------------------------------- the HTTP client
def _httpx():
    try:
        import httpx2 as httpx  # brought by huggingface_hub >= 1.x
    except ImportError:  # pragma: no cover - older stacks
        try:
            import httpx
        except ImportError:
            raise ModelServerError("model servers need the httpx2 (or httpx) package: pip install httpx2") from None
    return httpx


_clients: dict = {}
_clients_lock = threading.Lock()


def client(base_url: str, options: ServerOptions):
    """The pooled client for this server (created on first use, shared by threads)."""
    key = (base_url, float(options.timeout), int(options.concurrency))
    with _clients_lock:
        found = _clients.get(key)
        if found is None or found.is_closed:
            httpx = _httpx()
            found = httpx.Client(
                timeout=httpx.Timeout(float(options.timeout), connect=min(float(options.timeout), 10.0)),
                limits=httpx.Limits(max_connections=int(options.concurrency) + 2, max_keepalive_connections=int(options.concurrency) + 2),
                follow_redirects=False, trust_env=False)
            _clients[key] = found
    return found


def close_clients() -> None:
    with _clients_lock:
        for c in _clients.values():
            c.close()
        _clients.clear()


def _headers() -> dict:
    headers = {"Accept": "application/json, text/event-stream"}
    key = owner.api_key()
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def key_source() -> str:
    """Which key was sent, in words (never the key itself)."""
    current = owner.settings()
    import os

    if current.api_key_env and os.environ.get(current.api_key_env, "").strip():
        return f"the API key from the environment variable {current.api_key_env} (named by {owner.KEYS['api_key_env']})"
    if current.api_key_file is not None:
        return f"the API key from the file {current.api_key_file} ({owner.KEYS['api_key_file']})"
    if current.api_key_env:
        return (f"no API key: {owner.KEYS['api_key_env']} names {current.api_key_env}, but that environment "
                "variable is empty or unset in the ComfyUI process")
    return (f"no API key: the server owner sets {owner.KEYS['api_key_env']}=NAME (the environment variable holding "
            f"the key) or {owner.KEYS['api_key_file']}=/path/to/keyfile and restarts ComfyUI")


def _redact(text: str) -> str:
    """``text`` with the API key (if a server echoed it back) replaced by ***."""
    try:
        key = owner.api_key()
    except ValueError:
        key = None
    return text.replace(key, "***") if key else text


def _detail(response) -> str:
    try:
        body = response.read().decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - a body we cannot read is no detail
        return ""
    try:
        data = json.loads(body)
    except ValueError:
        return _redact(" ".join(body.split())[:300])
    err = data.get("error", data.get("detail", data)) if isinstance(data, dict) else data
    if isinstance(err, dict):
        err = err.get("message", err)
    return _redact(" ".join(str(err).split())[:300])


def _models_hint(base_url: str, options: ServerOptions) -> str:
    try:
        names = list_models(base_url, options)
    except ModelServerError:
        return "the server did not list its models"
    return f"the server has: {names}" if names else "the server lists no models"


def _status_error(base_url: str, options: ServerOptions, model: str, status: int, detail: str) -> ModelServerError:
    said = f" (the server said: {detail})" if detail else ""
    if status in (401, 403):
        return ModelServerError(f"model server {base_url} refused the request with HTTP {status}{said}. Sent: "
                                f"{key_source()}. Check the key is one this server accepts.")
    low = detail.lower()
    if status == 413 or (status in (400, 422) and any(w in low for w in _CONTEXT_WORDS)):
        return ModelServerError(f"the request does not fit {model!r}'s context on {base_url}{said}: shorten the text, "
                                "lower max_new_tokens, or lower max_side on Connect Model Server for images")
    if status == 404 or (status == 400 and ("model" in low or (model and model.lower() in low))):
        return ModelServerError(f"model {model!r} was not found on {base_url} (HTTP {status}){said}; "
                                f"{_models_hint(base_url, options)}: type one of them in Connect Model Server's model")
    return ModelServerError(f"model server {base_url} answered HTTP {status}{said}")


def _sleep_backoff(attempt: int, retry_after: str | None) -> None:
    delay = min(0.5 * 2 ** attempt, 8.0)
    if retry_after:
        try:
            delay = min(max(float(retry_after), 0.0), 30.0)
        except ValueError:
            pass
    end = time.monotonic() + delay
    while time.monotonic() < end:
        host.check_interrupt()  # Cancel during the wait: the host's own interrupt exception
        time.sleep(min(0.05, max(end - time.monotonic(), 0)))


def _unreachable(base_url: str, exc) -> ModelServerError:
    return ModelServerError(f"model server {base_url} is unreachable ({type(exc).__name__}: {exc}): start the server "
                            f"or fix base_url (usual ones: {SERVER_URLS})")


def _timeout(base_url: str, options: ServerOptions, started: float) -> ModelServerError:
    return ModelServerError(f"model server {base_url} sent nothing for {options.timeout:g} s (waited "
                            f"{time.monotonic() - started:.1f} s in all): the server is busy or stuck; raise timeout "
                            "on Connect Model Server or check the server")


# ---------------------------------------------------------------- requests
def list_models(base_url: str, options: ServerOptions = ServerOptions()) -> list[str]:
    """Model ids from GET {base_url}/models."""
    httpx = _httpx()
    base_url = normalize_base_url(base_url)
    started = time.monotonic()
    for attempt in range(int(options.max_retries) + 1):
        try:
            response = client(base_url, options).get(f"{base_url}/models", headers=_headers())
            break
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
            if attempt >= int(options.max_retries):
                raise _unreachable(base_url, exc) from None
            _sleep_backoff(attempt, None)
        except httpx.TimeoutException:
            raise _timeout(base_url, options, started) from None
    if response.status_code != 200:
        raise _status_error(base_url, options, "", response.status_code, _detail(response))
    try:
        data = response.json()
        return [str(item["id"]) for item in data["data"]]
    except (ValueError, KeyError, TypeError):
        raise ModelServerError(f"model server {base_url}/models answered {response.text[:200]!r}, not an OpenAI model "
                               "list: check base_url points at the OpenAI-compatible API (usually ending in /v1)") from None


def _malformed(base_url: str, what) -> ModelServerError:
    text = _redact(what if isinstance(what, str) else json.dumps(what)[:200])
    return ModelServerError(f"model server {base_url} sent something that is not an OpenAI chat completion "
                            f"({text[:200]!r}): check base_url points at the OpenAI-compatible API (usually ending in /v1)")


def _content_of(base_url: str, data, delta: bool) -> tuple[str, str]:
    """(text, reasoning) of one chunk or a whole completion (reasoning: a reasoning model's
    thoughts, sent apart as ``reasoning_content`` / ``reasoning`` by vLLM, Ollama, transformers serve)."""
    if not isinstance(data, dict):
        raise _malformed(base_url, data)
    if "error" in data:
        err = data["error"]
        message = err.get("message", err) if isinstance(err, dict) else err
        raise ModelServerError(f"model server {base_url} reported an error: {_redact(str(message))[:300]}")
    choices = data.get("choices")
    if not isinstance(choices, list):
        raise _malformed(base_url, data)
    if not choices:  # e.g. a final usage-only chunk
        return "", ""
    part = choices[0].get("delta" if delta else "message") or {}
    if not isinstance(part, dict):
        raise _malformed(base_url, data)
    content = part.get("content") or ""
    reasoning = part.get("reasoning_content") or part.get("reasoning") or ""
    if not isinstance(content, str) or not isinstance(reasoning, str):
        raise _malformed(base_url, data)
    return content, reasoning


def _joined(pieces: list[str], thoughts: list[str]) -> str:
    """The answer, with the thoughts (if any) in front as a <think> block, as in-process models write them."""
    thinking = "".join(thoughts).strip()
    return (f"<think>{thinking}</think>" if thinking else "") + "".join(pieces)


def chat(base_url: str, model: str, messages: list, options: ServerOptions, *, max_tokens: int,
         on_token: Callable[[int, str], None] | None = None, cancel: CancelScope | None = None) -> str:
    """Stream one chat completion; the text. ``on_token(n, piece)`` after each streamed chunk (n chunks
    so far, piece: its answer text). Closes the stream within a chunk when ``cancel`` is set or the host is interrupted
    (raises ``Cancelled``). Retries connection failures and 429/502/503/504 with backoff, but never
    once part of the answer arrived."""
    httpx = _httpx()
    body = {"model": model, "messages": messages, "max_tokens": int(max_tokens), "stream": True,
            "temperature": float(options.temperature), "seed": int(options.seed) % 2**31}
    if options.stop:
        body["stop"] = list(options.stop)
    started = time.monotonic()
    http = client(base_url, options)
    for attempt in range(int(options.max_retries) + 1):
        received = 0
        last = attempt >= int(options.max_retries)
        try:
            with http.stream("POST", f"{base_url}/chat/completions", json=body, headers=_headers()) as response:
                if response.status_code != 200:
                    if response.status_code in RETRY_STATUSES and not last:
                        retry_after = response.headers.get("retry-after")
                        log.info("model server %s answered %d; retrying", base_url, response.status_code)
                        response.close()
                        _sleep_backoff(attempt, retry_after)
                        continue
                    raise _status_error(base_url, options, model, response.status_code, _detail(response))
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    try:  # a server that ignores "stream": one JSON completion
                        data = json.loads(response.read())
                    except ValueError:
                        raise _malformed(base_url, response.text) from None
                    return _joined(*([part] for part in _content_of(base_url, data, delta=False)))
                pieces: list[str] = []
                thoughts: list[str] = []
                with cancel.track(response) if cancel is not None else contextlib.nullcontext():
                    for line in response.iter_lines():
                        if (cancel is not None and cancel.is_set()) or host.interrupted():
                            raise Cancelled()
                        if not line.startswith("data:"):
                            continue
                        payload = line[5:].strip()
                        if payload == "[DONE]":
                            break
                        try:
                            data = json.loads(payload)
                        except ValueError:
                            raise _malformed(base_url, payload) from None
                        text, reasoning = _content_of(base_url, data, delta=True)
                        if text or reasoning:
                            pieces.append(text)
                            thoughts.append(reasoning)
                            received += 1
                            if on_token is not None:
                                on_token(received, text)
                return _joined(pieces, thoughts)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            if last:
                raise _unreachable(base_url, exc) from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            if cancel is not None and cancel.is_set():  # we cut it
                raise Cancelled() from None
            if received or last:
                raise ModelServerError(
                    f"model server {base_url} closed the connection after {received} chunks of the answer "
                    f"({type(exc).__name__}: {exc}): it stopped or crashed; check its log, then run again") from None
        except httpx.TimeoutException:
            raise _timeout(base_url, options, started) from None
        log.info("model server %s: connection failed (attempt %d); retrying", base_url, attempt + 1)
        _sleep_backoff(attempt, None)
    raise ModelServerError(f"model server {base_url}: no answer after {int(options.max_retries) + 1} attempts")


def connect_captioner(base_url: str, model: str = "", options: ServerOptions | None = None, *, check: bool = True):
    """A ServerCaptioner for (base_url, model, options): what a worker (Ray) or the CLI rebuilds from settings."""
    from .server_models import connect

    return connect(base_url, model, options or ServerOptions(), check=check)[0]
