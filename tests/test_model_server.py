"""Model servers: Connect Model Server against a real `transformers serve` on 127.0.0.1 (started
once per session with a tiny LLaVA, so image parts reach a real vision tower; bounded start-up,
killed at the end) and, for what that server cannot be made to do (require a key, answer 503,
context errors, garbage, reasoning apart) or to check exactly what we send (data URL sizes and
formats, request fields), a minimal real HTTP server in tests/server_support.py."""
import math
import pickle
import threading

import pytest
from comfyui_support import widget_defaults
from server_support import ImageServer, free_port, png_size_and_format, silent_socket

from llm_assist import NODE_CLASS_MAPPINGS as NODES
from llm_assist.core import host, owner
from llm_assist.core.model_server import ModelServerError, ServerOptions, list_models, normalize_base_url
from llm_assist.core.server_models import ServerCaptioner, ServerLanguageModel, connect, image_data_url

FAST = dict(timeout=60.0, max_retries=1)


@pytest.fixture()
def image_server():
    server = ImageServer()
    yield server
    server.close()


def _connect(url, model="", **options):
    out = NODES["LLMAssistConnectModelServer"]().connect(
        base_url=url, model=model, temperature=options.pop("temperature", 0.0), server_seed=options.pop("seed", 0),
        max_side=options.pop("max_side", 1024), image_format=options.pop("image_format", "png"),
        concurrency=options.pop("concurrency", 2), timeout=options.pop("timeout", 60.0),
        max_retries=options.pop("max_retries", 1), **options)
    return out["result"]


def _expand(lm, text="a red fox in the snow", max_new_tokens=12, token_budget=0, temperature=0.7, seed=0):
    out = NODES["LLMAssistExpandPrompt"]().expand(**{
        **widget_defaults("LLMAssistExpandPrompt"), "mode": "generate", "seed": seed, "max_new_tokens": max_new_tokens,
        "temperature": temperature, "token_budget": token_budget, "language_model": lm, "text": text})
    return out["result"][0]


# ------------------------------------------------------------------ transformers serve
def test_list_models_and_connect_picks_the_served_model(serve):
    assert list_models(serve.url) == [serve.model]
    captioner, lm, models = _connect(serve.url.removesuffix("/v1"))  # no path: /v1 is added
    assert models == serve.model and captioner.model == lm.model == serve.model
    assert captioner.base_url == serve.url
    with pytest.raises(ModelServerError, match=r"not one .* serves.*tiny-llava-chatty"):
        _connect(serve.url, model="no-such-model")


def test_caption_and_expansion_end_to_end_through_the_nodes(serve):
    import torch

    captioner, lm, _ = _connect(serve.url, concurrency=2)
    a, b = torch.zeros(1, 40, 48, 3), torch.ones(1, 64, 32, 3)
    images = [torch.cat([a, a]), b, a]  # a list of batches, mixed sizes
    captions = NODES["LLMAssistCaptionImage"]().caption(captioner=[captioner], image=images, max_new_tokens=[12])[0]
    assert len(captions) == 4 and all(isinstance(c, str) and c for c in captions)
    assert captions[0] == captions[1] == captions[3]  # the same image, greedy: the same caption, in order
    text = _expand(lm, max_new_tokens=10)
    assert text and text != "a red fox in the snow"
    node = NODES["LLMAssistExtractKeywords"]
    widgets = {name: [spec[1]["default"]] for name, spec in node.INPUT_TYPES()["required"].items()
               if len(spec) > 1 and "default" in spec[1]}
    keywords, strings = node().extract(**{**widgets, "caption": [text], "method": ["llm"], "language_model": [lm]})
    assert len(keywords) == len(strings) == 1 and isinstance(strings[0], str)


def test_the_image_reaches_the_model_on_the_server(serve):
    """transformers serve runs the tiny LLaVA's vision tower: an image part adds its image tokens."""
    from llm_assist.core.model_server import client
    from PIL import Image
    from server_support import IMAGE_TOKENS

    def prompt_tokens(content):
        body = {"model": serve.model, "max_tokens": 1, "messages": [{"role": "user", "content": content}]}
        response = client(serve.url, ServerOptions()).post(f"{serve.url}/chat/completions", json=body)
        return response.json()["usage"]["prompt_tokens"]

    url = image_data_url(Image.new("RGB", (300, 200), (200, 30, 30)), 64, "jpeg")
    text_only = prompt_tokens([{"type": "text", "text": "describe"}])
    with_image = prompt_tokens([{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "describe"}])
    assert with_image == text_only + IMAGE_TOKENS


def test_streaming_moves_progress_per_token_and_fixed_seed_greedy_is_deterministic(serve):
    _, lm, _ = _connect(serve.url)
    seen = []
    host.add_progress_listener(lambda current, total: seen.append((current, total)))
    try:
        first = _expand(lm, max_new_tokens=16)
    finally:
        host.remove_progress_listener(host._progress_listeners[-1])
    steps = [c for c, _ in seen]
    assert len(set(steps)) >= 8, seen  # one update per streamed token, not one at the end
    assert steps == sorted(steps) and seen[-1] == (16, 16)
    assert _expand(lm, max_new_tokens=16) == first  # temperature 0: the same text again
    node = NODES["LLMAssistConnectModelServer"]
    assert node.IS_CHANGED(temperature=0.0, server_seed=3) == node.IS_CHANGED(temperature=0.0, server_seed=3)
    assert math.isnan(node.IS_CHANGED(temperature=0.5, server_seed=3))


def test_cancel_mid_stream_stops_within_a_token_and_the_pool_stays_usable(serve):
    _, lm, _ = _connect(serve.url, concurrency=1)
    after = []

    def listener(current, total):
        if host.interrupted():
            after.append(current)
        elif current >= 3:
            host.request_interrupt()

    host.add_progress_listener(listener)
    try:
        with pytest.raises(host.Interrupted):
            _expand(lm, max_new_tokens=200)
    finally:
        host.remove_progress_listener(listener)
    assert len(after) <= 1, after  # the stream was closed within a token
    assert _expand(lm, max_new_tokens=4)  # same pooled client, next call works


def test_cancel_with_concurrent_image_requests(serve):
    import torch

    captioner, _, _ = _connect(serve.url, concurrency=3)
    calls = []

    def listener(current, total):
        calls.append(current)
        if current >= 4:
            host.request_interrupt()

    host.add_progress_listener(listener)
    try:
        with pytest.raises(host.Interrupted):
            captioner.caption([torch.rand(6, 16, 16, 3)], _settings(max_new_tokens=150))
    finally:
        host.remove_progress_listener(listener)
    assert max(calls) < 6 * 150
    assert len(captioner.caption([torch.rand(1, 16, 16, 3)], _settings(max_new_tokens=3))) == 1


def _settings(**kw):
    from llm_assist.core.captioning import CaptionSettings

    return CaptionSettings(**kw)


def test_server_killed_mid_stream_is_a_clear_error_and_the_next_call_works_after_restart(serve):
    _, lm, _ = _connect(serve.url, concurrency=1)
    killed = threading.Event()

    def listener(current, total):
        if current >= 3 and not killed.is_set():
            killed.set()
            serve.kill()

    host.add_progress_listener(listener)
    try:
        with pytest.raises(ModelServerError, match="closed the connection after [0-9]+ chunks"):
            _expand(lm, max_new_tokens=400)
    finally:
        host.remove_progress_listener(listener)
    with pytest.raises(ModelServerError, match="unreachable.*start the server"):
        _expand(lm, max_new_tokens=2)
    serve.start()
    assert _expand(lm, max_new_tokens=4)


# ------------------------------------------------------------------ real sockets for the rest
def test_timeout_on_a_socket_that_accepts_and_never_answers_is_not_retried():
    with silent_socket() as silent:
        options = ServerOptions(timeout=1.0, max_retries=2)
        lm = ServerLanguageModel(silent.url, "m", options)
        with pytest.raises(ModelServerError, match=r"sent nothing for 1 s \(waited [0-9.]+ s"):
            lm.generate("instruction", "text", max_new_tokens=4)
        assert silent.accepted == 1  # a slow server is not asked again


def test_unreachable_server_names_the_url_and_the_fix():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ModelServerError, match=r"127\.0\.0\.1.* is unreachable \(ConnectError.*start the server"):
        _connect(url, max_retries=1)


@pytest.mark.parametrize("url", ["http://10.1.2.3:8000/v1", "http://example.com/v1", "http://127.0.0.1.nip.io/v1",
                                 "file:///etc/passwd", "http://user:secret@127.0.0.1:8000/v1", "ftp://127.0.0.1/"])
def test_a_workflow_cannot_reach_a_host_the_owner_did_not_allow(url):
    node = NODES["LLMAssistConnectModelServer"]
    message = node.VALIDATE_INPUTS(base_url=url)
    assert isinstance(message, str) and "base_url" in message
    with pytest.raises(ValueError, match="base_url"):
        _connect(url)


def test_the_owner_allows_a_lan_host():
    with owner.override(server_hosts=("10.1.2.3:8000",)):
        assert normalize_base_url("http://10.1.2.3:8000") == "http://10.1.2.3:8000/v1"
        with pytest.raises(owner.NotGranted):
            normalize_base_url("http://10.1.2.3:9000/v1")  # another port is another grant


def test_images_go_as_downscaled_data_urls_one_request_each_in_order(image_server):
    import torch

    captioner, _, models = _connect(image_server.url, model="vision-test", max_side=256, image_format="jpeg",
                                    concurrency=3)
    assert models == "vision-test"
    image_server.delays = {256: 0.3}  # the first image answers last
    batch = [torch.rand(1, 400, 1000, 3), torch.rand(2, 100, 60, 3), torch.rand(1, 30, 20, 3)]
    captions = NODES["LLMAssistCaptionImage"]().caption(captioner=[captioner], image=batch, max_new_tokens=[8])[0]
    assert captions == ["image 256x102 jpeg", "image 60x100 jpeg", "image 60x100 jpeg", "image 20x30 jpeg"]
    assert len(image_server.requests) == 4
    for body in image_server.requests:
        assert body["stream"] is True and body["temperature"] == 0.0 and body["max_tokens"] == 8 and "seed" in body
        assert [p["type"] for p in body["messages"][0]["content"]] == ["image_url", "text"]


def test_image_data_url_keeps_small_images_and_png_is_lossless():
    from PIL import Image

    image = Image.new("RGB", (33, 17), (10, 200, 30))
    assert png_size_and_format(image_data_url(image, 1024, "png")) == (33, 17, "png")
    assert png_size_and_format(image_data_url(image, 16, "png"))[:2] == (16, 8)


def test_seed_temperature_stop_are_sent(image_server):
    _, lm, _ = _connect(image_server.url, model="vision-test", temperature=0.6, seed=42, stop="###\nEND")
    _expand(lm, max_new_tokens=5)
    body = image_server.requests[-1]
    assert (body["temperature"], body["seed"], body["stop"], body["max_tokens"]) == (0.6, 42, ["###", "END"], 5)


def test_401_names_the_key_variable_and_never_the_key(monkeypatch, tmp_path):
    secret = "sk-test-0123456789abcdef"
    server = ImageServer(key=secret)
    try:
        with pytest.raises(ModelServerError, match=r"HTTP 401.*no API key.*LLM_ASSIST_API_KEY_ENV") as info:
            _connect(server.url, model="vision-test")
        monkeypatch.setenv("MY_SERVER_KEY", "wrong-key")
        with owner.override(api_key_env="MY_SERVER_KEY"):
            with pytest.raises(ModelServerError, match=r"HTTP 401.*MY_SERVER_KEY") as info:
                _connect(server.url, model="vision-test")
            assert "wrong-key" not in str(info.value) and "***" in str(info.value)  # the echoed key is masked
            monkeypatch.setenv("MY_SERVER_KEY", secret)
            captioner, lm, _ = _connect(server.url, model="vision-test")
            assert _expand(lm, max_new_tokens=3) == "no image"
            assert secret not in repr(captioner) + repr(lm) + repr(pickle.dumps(lm))
        key_file = tmp_path / "key.txt"
        key_file.write_text(secret + "\n")
        with owner.override(api_key_file=key_file):
            assert _connect(server.url, model="vision-test")[2] == "vision-test"
    finally:
        server.close()


def test_model_not_found_lists_the_served_models(image_server):
    lm = ServerLanguageModel(image_server.url, "llava:13b", ServerOptions(max_retries=0))
    with pytest.raises(ModelServerError, match=r"'llava:13b' was not found .*\['vision-test'\]"):
        lm.generate("i", "t", max_new_tokens=3)


@pytest.mark.parametrize("step, pattern, attempts", [
    ("context", "does not fit .* context.*shorten", 1),
    ("garbage", "not an OpenAI chat completion", 1),
    ("400", "answered HTTP 400", 1),
    ("500", "answered HTTP 500", 1),
    ("307", "answered HTTP 307", 1),  # redirects are not followed (they could lead off the allowed host)
])
def test_non_retryable_failures_are_clear_and_asked_once(image_server, step, pattern, attempts):
    image_server.script = [step, step, step]
    lm = ServerLanguageModel(image_server.url, "vision-test", ServerOptions(max_retries=2))
    with pytest.raises(ModelServerError, match=pattern):
        lm.generate("instruction", "text", max_new_tokens=3)
    assert len(image_server.requests) == attempts


def test_retryable_failures_are_retried_with_backoff(image_server):
    image_server.script = ["503", "429"]
    lm = ServerLanguageModel(image_server.url, "vision-test", ServerOptions(max_retries=2))
    assert lm.generate("instruction", "text", max_new_tokens=3) == "no image"
    assert len(image_server.requests) == 3
    image_server.script = ["503", "503"]
    lm = ServerLanguageModel(image_server.url, "vision-test", ServerOptions(max_retries=1))
    with pytest.raises(ModelServerError, match="HTTP 503"):
        lm.generate("instruction", "text", max_new_tokens=3)


def test_backends_pickle_as_settings_and_rebuild(image_server):
    import torch

    captioner, lm, _ = connect(image_server.url, "vision-test", ServerOptions(max_side=64))
    again = pickle.loads(pickle.dumps(captioner))
    assert again == captioner and again.__dict__.keys() == {"base_url", "model", "options"}
    assert ServerCaptioner(captioner.base_url, captioner.model, captioner.options) == captioner
    assert again.caption([torch.rand(1, 80, 80, 3)]) == ["image 64x64 png"]
    assert pickle.loads(pickle.dumps(lm)) == lm


def test_no_key_in_a_saved_image_or_the_workflow(monkeypatch, tmp_path):
    """Run a workflow using a key-protected server headless; grep every file it wrote."""
    from llm_assist import runner
    from llm_assist.core.sample_images import write_example_images

    secret = "sk-metadata-check-5f1e2d3c"
    server = ImageServer(key=secret)
    monkeypatch.setenv("LLMA_TEST_SERVER_KEY", secret)
    inputs = tmp_path / "input"
    names = write_example_images(inputs, size=64)
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "LLMAssistConnectModelServer", "inputs": {
            "base_url": server.url, "model": "vision-test", "temperature": 0.0, "server_seed": 0, "max_side": 1024,
            "image_format": "png", "concurrency": 2, "timeout": 30.0, "max_retries": 1}},
        "3": {"class_type": "LLMAssistCaptionImage", "inputs": {
            "captioner": ["2", 0], "image": ["1", 0], "instruction": "short", "custom_instruction": "",
            "max_new_tokens": 8, "num_beams": 1, "do_sample": False, "temperature": 0.7, "top_p": 0.9, "seed": 0,
            "batch_size": 1}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "keycheck"}},
    }
    previous = host.set_input_directory(inputs)
    try:
        with owner.override(api_key_env="LLMA_TEST_SERVER_KEY"):
            result = runner.execute_prompt(prompt, output_dir=tmp_path / "out", extra_pnginfo={"workflow": {"nodes": []}},
                                           cache=False)
    finally:
        host.set_input_directory(previous)
        server.close()
    assert names and result.outputs["4"]["text"][0].startswith("image 64x64")
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert any(p.suffix == ".png" for p in written)
    from PIL import Image

    png = next(p for p in written if p.suffix == ".png")
    assert "prompt" in Image.open(png).info  # the metadata is there, and holds no key
    for path in written:
        assert secret.encode() not in path.read_bytes(), path
    assert secret not in repr(prompt) and secret not in repr(result)


def test_cli_captions_a_folder_through_a_server_resumably(image_server, tmp_path, capsys):
    from PIL import Image

    from llm_assist.cli import main

    folder = tmp_path / "photos"
    folder.mkdir()
    for i, size in enumerate([(80, 40), (30, 60), (50, 50)]):
        Image.new("RGB", size, (40 * i, 90, 200)).save(folder / f"p{i}.png")
    argv = ["caption", str(folder), "--server", image_server.url, "--model", "vision-test", "--max-side", "32",
            "--concurrency", "2"]
    assert main(argv) == 0
    assert [(folder / f"p{i}.txt").read_text().strip() for i in range(3)] == [
        "image 32x16 png", "image 16x32 png", "image 32x32 png"]
    assert len(image_server.requests) == 3
    (folder / "p1.txt").unlink()
    assert main(argv) == 0  # resumed: only the image without a caption file is sent
    assert len(image_server.requests) == 4 and (folder / "p1.txt").read_text().strip() == "image 16x32 png"
    assert "2 skipped" in capsys.readouterr().out


def test_cli_user_is_the_owner_of_the_server_grant():
    from llm_assist.cli.caption_server import server_grant

    with pytest.raises(owner.NotGranted):
        normalize_base_url("http://10.9.8.7:8000/v1")
    with server_grant("http://10.9.8.7:8000/v1"):
        assert normalize_base_url("http://10.9.8.7:8000/v1") == "http://10.9.8.7:8000/v1"
    with pytest.raises(owner.NotGranted):
        normalize_base_url("http://10.9.8.7:8000/v1")


@pytest.mark.parametrize("temperature, asks_again", [(0.0, False), (0.5, True)])
def test_temperature_0_is_cached_and_sampling_reruns(image_server, tmp_path, temperature, asks_again):
    from llm_assist import runner

    runner.clear_caches()
    prompt = {
        "1": {"class_type": "LLMAssistConnectModelServer", "inputs": {
            "base_url": image_server.url, "model": "vision-test", "temperature": temperature, "server_seed": 7,
            "max_side": 1024, "image_format": "png", "concurrency": 2, "timeout": 30.0, "max_retries": 0}},
        "2": {"class_type": "LLMAssistExpandPrompt", "inputs": {
            **widget_defaults("LLMAssistExpandPrompt"), "mode": "generate", "max_new_tokens": 8, "temperature": 0.0,
            "token_budget": 0, "language_model": ["1", 1], "text": "a cat"}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
    }
    first = runner.execute_prompt(prompt, output_dir=tmp_path)
    asked = len(image_server.requests)
    second = runner.execute_prompt(prompt, output_dir=tmp_path)
    assert asked >= 1 and first.outputs["3"] == second.outputs["3"]
    assert (len(image_server.requests) > asked) is asks_again
    assert ("2" in second.executed) is asks_again


def test_one_failing_image_request_fails_the_batch_with_its_own_error(image_server):
    import torch

    captioner = ServerCaptioner(image_server.url, "vision-test", ServerOptions(concurrency=3, max_retries=0))
    image_server.delays = {20: 0.5}  # the others are still streaming when one fails
    image_server.script = ["400"]
    with pytest.raises(ModelServerError, match="answered HTTP 400"):
        captioner.caption([torch.rand(3, 20, 20, 3)])
    assert len(captioner.caption([torch.rand(1, 20, 20, 3)])) == 1  # and the next batch works


def test_reasoning_sent_apart_becomes_the_thinking_output(image_server):
    from llm_assist.core.language_model import generate_text

    lm = ServerLanguageModel(image_server.url, "vision-test")
    image_server.script = ["reasoning", "reasoning"]
    assert generate_text(lm, "rewrite", "a fox", max_new_tokens=8, with_thinking=True) == ("a red fox, snow", "the user wants a fox")
    assert generate_text(lm, "rewrite", "a fox", max_new_tokens=8) == "a red fox, snow"


def test_cancel_during_a_retry_backoff_stops_the_retries(image_server):
    image_server.script = ["503"] * 10
    lm = ServerLanguageModel(image_server.url, "vision-test", ServerOptions(max_retries=8))
    timer = threading.Timer(0.3, host.request_interrupt)
    timer.start()
    try:
        with pytest.raises(host.Interrupted):
            lm.generate("instruction", "text", max_new_tokens=3)
    finally:
        timer.cancel()
    assert len(image_server.requests) < 9  # stopped waiting instead of asking again


def test_the_answers_so_far_are_shown_as_they_stream(image_server, monkeypatch):
    import torch

    shown = []
    monkeypatch.setattr(host, "progress_text", shown.append)  # inside ComfyUI: drawn under the node
    captioner = ServerCaptioner(image_server.url, "vision-test", ServerOptions(concurrency=1))
    assert captioner.caption([torch.rand(2, 20, 30, 3)]) == ["image 30x20 png"] * 2
    assert shown[0] == "1: image\n2: " and shown[-1] == "1: image 30x20 png\n2: image 30x20 png"
    _, lm, _ = connect(image_server.url, "vision-test")
    shown.clear()
    lm.generate("instruction", "text", max_new_tokens=5)
    assert shown == ["no", "no image"]


def test_cancel_cuts_a_stream_still_waiting_for_its_first_token(image_server):
    """The server sent its headers and then nothing (busy): Cancel does not wait for a token or the timeout."""
    image_server.script = ["stall"]  # holds the answer until image_server.release is set
    lm = ServerLanguageModel(image_server.url, "vision-test", ServerOptions(timeout=60.0, concurrency=1, max_retries=0))
    outcome = []

    def run():
        try:
            lm.generate("instruction", "text", max_new_tokens=3)
        except BaseException as exc:  # noqa: BLE001 - recorded for the assert
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    while not image_server.requests:
        worker.join(0.05)
    host.request_interrupt()
    worker.join(20)  # a hang detector, not a speed check: without the cut it waits for the server
    alive = worker.is_alive()
    image_server.release.set()
    worker.join()
    assert not alive and len(outcome) == 1 and isinstance(outcome[0], host.Interrupted), outcome
    assert lm.generate("instruction", "text", max_new_tokens=3) == "no image"  # the pool is still usable
