"""``caption SOURCE --server URL --model NAME``: caption through an OpenAI-compatible model server.

The person running the CLI is the server owner: the host of ``--server`` is allowed for this run
(owner.override), and an API key comes from the variable named by LLM_ASSIST_API_KEY_ENV or the
file LLM_ASSIST_API_KEY_FILE, never from a command-line argument (it would land in shell history).
"""
from __future__ import annotations

import contextlib
from urllib.parse import urlsplit


def add_server_arguments(p) -> None:
    g = p.add_argument_group("model server (instead of a local model; --model is then the server's model name)")
    g.add_argument("--server", metavar="URL", default="",
                   help="OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1 (Ollama), :8080/v1 (llama-server), "
                        ":1234/v1 (LM Studio), :8000/v1 (vLLM, transformers serve)")
    g.add_argument("--concurrency", type=int, default=2, help="requests in flight at once, one per image (default 2)")
    g.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the server's next token (default 120)")
    g.add_argument("--max-retries", type=int, default=2, help="extra attempts for retryable failures (default 2)")
    g.add_argument("--max-side", type=int, default=1024, help="images are downscaled to this longest side (default 1024)")
    g.add_argument("--image-format", choices=["png", "jpeg"], default="png", help="how images are sent (default png)")
    g.add_argument("--temperature", type=float, default=0.0, help="sampling temperature on the server (default 0 = greedy)")


def server_options(args):
    from ..core.model_server import ServerOptions

    return ServerOptions(timeout=args.timeout, max_retries=args.max_retries, temperature=args.temperature,
                         seed=args.seed, max_side=args.max_side, image_format=args.image_format,
                         concurrency=args.concurrency)


@contextlib.contextmanager
def server_grant(url: str):
    """Allow ``url``'s host for the block: on the command line the user is the owner."""
    from ..core import owner

    parts = urlsplit(str(url).strip())
    if not parts.hostname:
        raise ValueError(f"--server {url!r} is not a URL: give one such as http://127.0.0.1:11434/v1")
    with owner.override(server_hosts=(*owner.settings().server_hosts, parts.hostname)):
        yield


def server_captioner(args):
    """The ServerCaptioner for ``--server`` / ``--model`` (checked: reachable, key accepted, model served)."""
    from ..core.model_server import connect_captioner

    with server_grant(args.server):
        return connect_captioner(args.server, args.model, server_options(args))
