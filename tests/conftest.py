"""Shared fixtures. HF_HUB_OFFLINE must be set before anything imports huggingface_hub."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny random-weight models laid out like ComfyUI's models/ folder, built once per session."""
    from llm_assist.core.tiny_models import build_tiny_models

    out = tmp_path_factory.mktemp("tiny-models")
    build_tiny_models(out)
    return out


@pytest.fixture(scope="session")
def serve(tmp_path_factory):
    """A real OpenAI-compatible server: `transformers serve` on 127.0.0.1 with a tiny vision-language
    model (tests/server_support.py), started once with a bounded start-up and killed at the end."""
    import importlib.util

    import transformers
    from server_support import TransformersServe, build_tiny_vlm

    try:
        has_serve = importlib.util.find_spec("transformers.cli.serve") is not None
    except ModuleNotFoundError:  # no transformers.cli package at all (4.x)
        has_serve = False
    if not has_serve:  # e.g. the floor stack (4.46)
        pytest.skip(f"transformers {transformers.__version__} has no `transformers serve` (5.x has): the tests "
                    "against a real model server run on the pinned stack")
    from transformers.utils.import_utils import is_serve_available

    assert is_serve_available(), "transformers serve needs fastapi, uvicorn and openai (requirements-test.txt)"
    folder = tmp_path_factory.mktemp("serve")
    model = build_tiny_vlm(folder / "tiny-llava-chatty")
    server = TransformersServe(model, folder / "serve.log").start()
    yield server
    server.kill()


@pytest.fixture()
def models_root(tiny_models):
    """Point the host adapter's plain-Python fallback at the tiny models for one test."""
    from llm_assist.core import host

    previous = host.set_models_root(tiny_models)
    yield tiny_models
    host.set_models_root(previous)


@pytest.fixture(autouse=True)
def _clear_interrupt():
    from llm_assist.core import host

    host.clear_interrupt()
    yield
    host.clear_interrupt()
