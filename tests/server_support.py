"""Real servers for the model-server tests (all on 127.0.0.1).

* ``TransformersServe``: ``transformers serve`` (a real OpenAI-compatible server) in a
  subprocess, with a bounded start-up, ``kill()`` and ``start()`` again on the same port.
* ``build_tiny_vlm``: a tiny LLaVA the server loads as a vision-language model (image parts reach
  the model), with an output head that only scores word tokens, so it streams one visible token
  per server-sent event.
* ``ImageServer``: a minimal real HTTP server speaking the OpenAI chat protocol for what
  ``transformers serve`` cannot be made to do (require a key, answer 503 / context errors /
  garbage / reasoning apart) and to see exactly what we send: it decodes each image_url data URL
  and answers with the image's size and format.
* ``silent_socket``: a listening socket whose connections are never answered.
"""
from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

START_TIMEOUT = 120.0  # seconds transformers serve may take to come up (about 7-25 s on 2 cores)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CHATML_WITH_IMAGES = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>{% elif part['type'] == 'text' %}"
    "{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
IMAGE_TOKENS = 16  # (32 px / 8 px patches)^2: what one image adds to the prompt


def build_tiny_vlm(dst: Path) -> Path:
    """A tiny LLaVA (CLIP vision tower + Qwen2 text model, the tiny Qwen2 tokenizer plus <image>)
    that ``transformers serve`` loads as a vision-language model, so image parts really reach a
    model. Its output head scores only alphabetic word tokens: every generated token is visible
    text, so the server streams one event per token (the random tiny chat model's tokens are mostly
    special / partial bytes, which the server buffers into one event)."""
    import torch
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration,
                              LlavaProcessor, Qwen2Config)

    from llm_assist.core.tiny_models import qwen2_tokenizer

    tok = qwen2_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<image>"]})
    tok.chat_template = CHATML_WITH_IMAGES
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              image_size=32, patch_size=8, projection_dim=32)
    text = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                       tie_word_embeddings=False, bos_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                       pad_token_id=tok.pad_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
                         vision_feature_layer=-1, vision_feature_select_strategy="default", projector_hidden_act="gelu")
    torch.manual_seed(2)
    model = LlavaForConditionalGeneration(config).eval()
    words = [i for t, i in tok.get_vocab().items()
             if len(t.lstrip("\u0120")) >= 2 and t.lstrip("\u0120").isascii() and t.lstrip("\u0120").isalpha()]
    assert len(words) > 50, "the tiny tokenizer has too few word tokens"
    weight = torch.zeros_like(model.lm_head.weight)
    weight[words] = torch.randn(len(words), weight.shape[1], generator=torch.Generator().manual_seed(0))
    model.lm_head.weight.data = weight
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tok, patch_size=8, vision_feature_select_strategy="default", chat_template=CHATML_WITH_IMAGES,
        image_token="<image>", num_additional_image_tokens=1)
    model.save_pretrained(dst)
    processor.save_pretrained(dst)
    return dst


class TransformersServe:
    """``transformers serve MODEL --host 127.0.0.1 --port P`` in a subprocess."""

    def __init__(self, model: Path, log_path: Path):
        self.model, self.log_path, self.port = str(model), log_path, free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "TransformersServe":
        env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "transformers.cli.transformers", "serve", self.model, "--host", "127.0.0.1",
             "--port", str(self.port), "--device", "cpu", "--log-level", "info"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as r:  # noqa: S310
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.kill()
        raise RuntimeError(f"transformers serve did not answer /health within {START_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def png_size_and_format(data_url: str) -> tuple[int, int, str]:
    from PIL import Image

    head, _, payload = data_url.partition(",")
    assert head in ("data:image/png;base64", "data:image/jpeg;base64"), head
    image = Image.open(io.BytesIO(base64.b64decode(payload, validate=True)))
    assert image.format.lower() == head.split("/")[1].split(";")[0], (image.format, head)
    return image.width, image.height, image.format.lower()


class ImageServer:
    """A minimal OpenAI-protocol server (a real socket) that checks and describes image parts.

    ``key``: require ``Authorization: Bearer <key>`` (401 otherwise). ``script``: a list of
    status codes / keywords answered in turn before normal answers ("503", "context", "garbage").
    ``delays``: seconds to wait before answering the image with that width (to reorder answers).
    """

    def __init__(self, key: str | None = None):
        self.key, self.script, self.delays = key, [], {}
        self.release = threading.Event()  # ends a "stall" answer
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes, ctype: str = "application/json"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _authorized(self) -> bool:
                if server.key is None or self.headers.get("Authorization") == f"Bearer {server.key}":
                    return True
                sent = self.headers.get("Authorization", "")  # echoed back, as some servers do
                self._send(401, json.dumps({"error": {"message": f"Invalid API key: {sent}"}}).encode())
                return False

            def do_GET(self):  # noqa: N802
                if not self._authorized():
                    return
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, json.dumps({"object": "list", "data": [{"id": "vision-test", "object": "model"}]}).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with server.lock:
                    server.requests.append(body)
                    step = server.script.pop(0) if server.script else None
                if not self._authorized():
                    return
                if step == "context":
                    return self._send(400, json.dumps({"error": {"message": "This model's maximum context length is 64 tokens."}}).encode())
                if step == "stall":  # headers, then nothing for a long time (a busy server)
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    self.wfile.flush()
                    server.release.wait(60)
                    self.close_connection = True
                    return
                if step == "reasoning":  # thoughts apart from the answer, as reasoning servers send them
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for delta in ({"reasoning_content": "the user wants"}, {"reasoning_content": " a fox"},
                                  {"content": "a red fox"}, {"content": ", snow"}):
                        self.wfile.write(f"data: {json.dumps({'choices': [{'index': 0, 'delta': delta}]})}\n\n".encode())
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.close_connection = True
                    return
                if step == "garbage":
                    return self._send(200, b"<html>hello</html>", "text/html")
                if step is not None:
                    return self._send(int(step), b'{"error": "try later"}')
                if body.get("model") != "vision-test":
                    return self._send(404, json.dumps({"error": {"message": f"model {body.get('model')!r} not found"}}).encode())
                parts = [p for m in body["messages"] if isinstance(m["content"], list) for p in m["content"]]
                sizes = [png_size_and_format(p["image_url"]["url"]) for p in parts if p["type"] == "image_url"]
                text = " ".join(f"image {w}x{h} {fmt}" for w, h, fmt in sizes) or "no image"
                if sizes:
                    time.sleep(server.delays.get(sizes[0][0], 0.0))
                words = text.split(" ")
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for i, word in enumerate(words):
                    chunk = {"choices": [{"index": 0, "delta": {"content": word if i == 0 else " " + word}}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class silent_socket:  # noqa: N801 - used as a context manager
    """A listening socket that accepts connections and never answers; ``accepted`` counts them."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.accepted, self.conns, self.stop = 0, [], threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self.conns.append(conn)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        for conn in self.conns:
            conn.close()
        self.sock.close()
