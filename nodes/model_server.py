"""Connect Model Server: an OpenAI-compatible server as a captioner and a language model."""
from __future__ import annotations

from ._common import category

DEFAULT_URL = "http://127.0.0.1:11434/v1"
_SAMPLING = (
    "Sampling for every request made through this connection (Caption Image, Expand Prompt, Extract Keywords "
    "llm): the nodes' own do_sample / temperature / seed widgets do not apply to a server; their "
    "max_new_tokens does. Caching: temperature 0 with server_seed left fixed counts as deterministic, so ComfyUI "
    "reuses earlier results until an input changes; any temperature above 0 makes this node (and everything "
    "after it) run again on every queue."
)


class LLMAssistConnectModelServer:
    DESCRIPTION = (
        "Use a model running in an OpenAI-compatible server (Ollama, llama.cpp llama-server, LM Studio, vLLM, "
        "transformers serve) as the captioner and the language model: wire the outputs into Caption Image (also "
        "the re-caption Keyword Fidelity scores), Expand Prompt, Extract Keywords (llm) or Metrics Report exactly "
        "like the in-process loaders'. Images go as base64 data URLs, one request per image, answers stream token by token "
        "(progress bar, Cancel). Loopback servers always work; another host only when the server owner lists "
        "it (LLM_ASSIST_SERVER_HOSTS). An API key comes only from the owner's settings (LLM_ASSIST_API_KEY_ENV "
        "or LLM_ASSIST_API_KEY_FILE), never from a widget, so it is never saved in a workflow or image."
    )
    CATEGORY = category("loaders")
    FUNCTION = "connect"
    RETURN_TYPES = ("LLMA_CAPTIONER", "LLMA_LANGUAGE_MODEL", "STRING")
    RETURN_NAMES = ("captioner", "language_model", "models")
    OUTPUT_TOOLTIPS = (
        "The server's model as a captioner (Caption Image, Metrics Report): needs a vision model on the server.",
        "The server's model as a language model (Expand Prompt, Extract Keywords llm).",
        "The models the server lists (one per line): copy one into 'model'.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "base_url": ("STRING", {"default": DEFAULT_URL, "tooltip": (
                    "The server's OpenAI API base URL. Ollama http://127.0.0.1:11434/v1, llama-server "
                    "http://127.0.0.1:8080/v1, LM Studio http://127.0.0.1:1234/v1, vLLM / transformers serve "
                    "http://127.0.0.1:8000/v1. Hosts other than this machine need the server owner's grant "
                    "(LLM_ASSIST_SERVER_HOSTS, README 'Owner settings').")}),
                "model": ("STRING", {"default": "", "tooltip": (
                    "The model name as the server lists it at /v1/models (see the 'models' output after a run), "
                    "e.g. 'llava:7b' on Ollama. Empty: the first model the server lists.")}),
                "temperature": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 2.0, "step": 0.05,
                                          "tooltip": "0 = greedy (deterministic). " + _SAMPLING}),
                "server_seed": ("INT", {"default": 0, "min": 0, "max": 0x7FFFFFFF,
                                 "tooltip": "Sent to servers that honour it (vLLM, llama-server, Ollama, transformers serve). " + _SAMPLING}),
                "max_side": ("INT", {"default": 1024, "min": 64, "max": 8192, "step": 64,
                                     "tooltip": "Images are downscaled so their longest side is at most this many pixels before sending."}),
                "image_format": (["png", "jpeg"], {"default": "png", "tooltip": "How images are encoded in the request: png (lossless) or jpeg (smaller)."}),
                "concurrency": ("INT", {"default": 2, "min": 1, "max": 32, "tooltip": "Requests in flight at once (one request per image); results keep the images' order."}),
                "timeout": ("FLOAT", {"default": 120.0, "min": 1.0, "max": 3600.0, "step": 1.0,
                                      "tooltip": "Seconds to wait for the server to connect or send the next piece of an answer."}),
                "max_retries": ("INT", {"default": 2, "min": 0, "max": 10, "tooltip": "Extra attempts, with backoff, for failures worth retrying (connection refused, 429/502/503/504); never for errors such as a wrong key or model."}),
            },
            "optional": {
                "stop": ("STRING", {"default": "", "multiline": True, "tooltip": "Stop strings, one per line: the server ends an answer at the first one."}),
            },
        }

    @classmethod
    def IS_CHANGED(cls, temperature=0.0, **_):
        # deterministic (temperature 0, server_seed fixed in its widget): cached like any node; else always re-run
        from ..core.model_server import ServerOptions

        try:
            return "" if ServerOptions(temperature=float(temperature)).deterministic else float("nan")
        except (TypeError, ValueError):
            return float("nan")

    @classmethod
    def VALIDATE_INPUTS(cls, base_url):
        if not isinstance(base_url, str):  # linked: checked when the node runs
            return True
        from ..core.model_server import normalize_base_url

        try:
            normalize_base_url(base_url)
        except ValueError as exc:
            return str(exc)
        return True

    def connect(self, base_url, model, temperature, server_seed, max_side, image_format, concurrency, timeout,
                max_retries, stop=""):
        from ..core.model_server import ServerOptions
        from ..core.server_models import connect

        options = ServerOptions(timeout=float(timeout), max_retries=int(max_retries), temperature=float(temperature),
                                seed=int(server_seed), stop=tuple(s for s in (stop or "").splitlines() if s.strip()),
                                max_side=int(max_side), image_format=image_format, concurrency=int(concurrency))
        captioner, language_model, models = connect(base_url, model, options)
        listed = "\n".join(models)
        return {"ui": {"text": [f"{captioner.name}\nserver models:\n{listed}"]},
                "result": (captioner, language_model, listed)}


NODE_CLASS_MAPPINGS = {"LLMAssistConnectModelServer": LLMAssistConnectModelServer}
NODE_DISPLAY_NAME_MAPPINGS = {"LLMAssistConnectModelServer": "Connect Model Server"}
