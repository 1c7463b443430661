"""Headless workflow runner: UI->API conversion, validation, list mapping, caching, stand-ins, CLI, --server."""
from __future__ import annotations

import collections
import copy
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from PIL import Image

from llm_assist import runner
from llm_assist.core import host
from llm_assist.runner.server import ServerError, object_info_entry, run_on_server

CALLS: collections.Counter = collections.Counter()


class ToyText:
    RETURN_TYPES = ("TOY_TEXT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "cat"}),
                             "seed": ("INT", {"default": 0, "min": 0, "max": 1000}),
                             "case": (["upper", "lower"],)}}

    def run(self, text, seed, case):
        CALLS["ToyText"] += 1
        out = f"{text}#{seed}"
        return (out.upper() if case == "upper" else out.lower(),)


class ToySplit:
    RETURN_TYPES = ("TOY_TEXT", "INT")
    OUTPUT_IS_LIST = (True, False)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("TOY_TEXT",), "sep": ("STRING", {"default": ","})}}

    def run(self, text, sep):
        parts = text.split(sep)
        return (parts, len(parts))


class ToyStrings:
    RETURN_TYPES = ("STRING",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"items": ("STRING", {"default": "!,?"})}}

    def run(self, items):
        return (items.split(","),)


class ToySuffix:
    RETURN_TYPES = ("TOY_TEXT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("TOY_TEXT",), "suffix": ("STRING", {"default": "!"})},
                "optional": {"repeat": ("INT", {"default": 1, "min": 1, "max": 5})}}

    def run(self, text, suffix, repeat=1):
        CALLS["ToySuffix"] += 1
        return (text + suffix * repeat,)


class ToyCollect:
    INPUT_IS_LIST = True
    RETURN_TYPES = ("STRING",)
    OUTPUT_NODE = True
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("TOY_TEXT,STRING",)}}

    def run(self, text):
        CALLS["ToyCollect"] += 1
        joined = "|".join(text)
        return {"ui": {"text": [joined], "instance": [id(self)]}, "result": (joined,)}


class ToyOther:
    RETURN_TYPES = ("TOY_OTHER",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"flag": ("BOOLEAN", {"default": True})}}

    def run(self, flag):
        return (flag,)


class ToyImage:
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0}),
                             "size": ("INT", {"default": 8, "min": 1, "max": 64})}}

    def run(self, value, size):
        import torch

        return (torch.full((1, size, size, 3), value),)


class ToyProbe:
    OUTPUT_NODE = True
    RETURN_TYPES = ()
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "mask": ("MASK",)}}

    def run(self, image, mask):
        return {"ui": {"image": [list(image.shape)], "mask": [mask.tolist()]}}


class ToyEven:
    RETURN_TYPES = ("TOY_TEXT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"n": ("INT", {"default": 2, "min": 0, "max": 10})}}

    @classmethod
    def VALIDATE_INPUTS(cls, n):
        return True if n % 2 == 0 else f"n must be even, got {n}: use {n + 1}"

    def run(self, n):
        return (str(n),)


TOYS = {c.__name__: c for c in (ToyText, ToySplit, ToyStrings, ToySuffix, ToyCollect, ToyOther,
                                 ToyImage, ToyProbe, ToyEven)}


@pytest.fixture(autouse=True)
def _fresh(tmp_path):
    runner.clear_caches()
    CALLS.clear()
    old_out = host.set_output_directory(tmp_path / "out")
    old_in = host.set_input_directory(tmp_path / "in")
    (tmp_path / "in").mkdir()
    yield
    host.set_output_directory(old_out)
    host.set_input_directory(old_in)


def api_chain(text="cat", seed=5, suffix="!"):
    return {"1": {"class_type": "ToyText", "inputs": {"text": text, "seed": seed, "case": "upper"}},
            "2": {"class_type": "ToySuffix", "inputs": {"text": ["1", 0], "suffix": suffix, "repeat": 2}},
            "3": {"class_type": "ToyCollect", "inputs": {"text": ["2", 0]}}}


def node(id_, type_, widgets=(), inputs=(), outputs=(), mode=0):
    return {"id": id_, "type": type_, "mode": mode, "widgets_values": list(widgets),
            "inputs": [dict(i) for i in inputs], "outputs": [dict(o) for o in outputs]}


def ui_chain():
    return {"version": 0.4, "links": [[11, 1, 0, 2, 0, "TOY_TEXT"], [12, 2, 0, 3, 0, "TOY_TEXT"]], "nodes": [
        node(1, "ToyText", ["cat", 5, "fixed", "upper"], outputs=[{"name": "TOY_TEXT", "type": "TOY_TEXT", "links": [11]}]),
        node(2, "ToySuffix", ["!", 2], inputs=[{"name": "text", "type": "TOY_TEXT", "link": 11}]),
        node(3, "ToyCollect", [], inputs=[{"name": "text", "type": "TOY_TEXT,STRING", "link": 12}])]}


def strip_meta(prompt):
    return {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in prompt.items()}


def test_ui_and_api_formats_give_the_same_prompt_and_result():
    ui = ui_chain()
    prompt = runner.to_api_prompt(ui, TOYS)
    assert strip_meta(prompt) == api_chain()  # "fixed" (control_after_generate) skipped
    v1 = copy.deepcopy(ui)
    v1["version"], v1["links"] = 1, [dict(zip(("id", "origin_id", "origin_slot", "target_id", "target_slot", "type"), link))
                                      for link in ui["links"]]
    assert strip_meta(runner.to_api_prompt(v1, TOYS)) == api_chain()
    a = runner.execute_prompt(api_chain(), node_classes=TOYS, cache=False)
    b = runner.run_workflow(ui, node_classes=TOYS, cache=False)
    assert a.outputs["3"]["text"] == b.outputs["3"]["text"] == ["CAT#5!!"]


def test_muted_bypassed_reroute_note_and_primitive_node():
    ui = {"links": [[1, 30, 0, 1, 0, "STRING"], [2, 1, 0, 10, 0, "*"], [3, 10, 0, 2, 0, "TOY_TEXT"],
                    [4, 2, 0, 3, 0, "TOY_TEXT"], [5, 1, 0, 4, 0, "TOY_TEXT"]], "nodes": [
        node(30, "PrimitiveNode", ["dog", "fixed"], outputs=[{"name": "STRING", "type": "STRING", "links": [1]}]),
        node(1, "ToyText", ["cat", 5, "fixed", "lower"],
             inputs=[{"name": "text", "type": "STRING", "link": 1, "widget": {"name": "text"}}]),
        node(10, "Reroute", [], inputs=[{"name": "", "type": "*", "link": 2}]),
        node(2, "ToySuffix", ["!", 1], inputs=[{"name": "text", "type": "TOY_TEXT", "link": 3}], mode=4),
        node(3, "ToyCollect", [], inputs=[{"name": "text", "type": "TOY_TEXT,STRING", "link": 4}]),
        node(4, "ToySuffix", ["?", 1], inputs=[{"name": "text", "type": "TOY_TEXT", "link": 5}], mode=2),
        node(20, "Note", ["a note"]), node(21, "MarkdownNote", ["# md"])]}
    prompt = runner.to_api_prompt(ui, TOYS)
    assert sorted(prompt) == ["1", "3"]
    assert prompt["1"]["inputs"]["text"] == "dog" and prompt["3"]["inputs"]["text"] == ["1", 0]
    assert runner.run_workflow(ui, node_classes=TOYS).outputs["3"]["text"] == ["dog#5"]


def test_list_mapping_output_is_list_input_is_list_and_broadcasting():
    prompt = {"1": {"class_type": "ToyText", "inputs": {"text": "a,b,c", "seed": 0, "case": "lower"}},
              "2": {"class_type": "ToySplit", "inputs": {"text": ["1", 0], "sep": ","}},
              "3": {"class_type": "ToyStrings", "inputs": {"items": "!,?"}},
              "4": {"class_type": "ToySuffix", "inputs": {"text": ["2", 0], "suffix": ["3", 0]}},
              "5": {"class_type": "ToyCollect", "inputs": {"text": ["4", 0]}},
              "6": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}}}
    result = runner.execute_prompt(prompt, node_classes=TOYS)
    assert result.outputs["5"]["text"] == ["a!|b?|c#0?"]  # the 2-list repeats its last element
    assert CALLS["ToySuffix"] == 3 and CALLS["ToyCollect"] == 1
    assert result.outputs["6"] == {"text": ["3"]}


def err(prompt, classes=TOYS):
    with pytest.raises(runner.WorkflowError) as info:
        runner.execute_prompt(prompt, node_classes=classes)
    return info.value


@pytest.mark.parametrize("edit, needles", [
    (lambda p: p["2"]["inputs"].pop("text"), ["node 2 (ToySuffix)", "'text'", "missing"]),
    (lambda p: p["1"]["inputs"].update(case="title"), ["node 1 (ToyText)", "'case'", "'title'", "upper"]),
    (lambda p: p["1"]["inputs"].update(seed=5000), ["node 1 (ToyText)", "'seed'", "5000", "max 1000"]),
    (lambda p: p["2"]["inputs"].update(repeat=0), ["node 2 (ToySuffix)", "'repeat'", "min 1"]),
    (lambda p: p["1"]["inputs"].update(seed="x"), ["node 1 (ToyText)", "'seed'", "'x'", "INT"]),
    (lambda p: (p.update({"7": {"class_type": "ToyOther", "inputs": {"flag": True}}}),
                p["2"]["inputs"].update(text=["7", 0])), ["node 2 (ToySuffix)", "'text'", "TOY_TEXT", "TOY_OTHER"]),
    (lambda p: p["2"]["inputs"].update(text=["99", 0]), ["node 2 (ToySuffix)", "'text'", "node 99"]),
    (lambda p: p["1"].update(class_type="Nope"), ["node 1 (Nope)", "--server"]),
    (lambda p: p["1"]["inputs"].update(text=["2", 0]), ["cycle", "1 (ToyText)", "2 (ToySuffix)"]),
    (lambda p: p.update({"8": {"class_type": "ToyOther", "inputs": {"flag": "false"}},
                         "9": {"class_type": "PreviewAny", "inputs": {"source": ["8", 0]}}}),
     ["node 8 (ToyOther)", "'flag'", "true or false"]),
])
def test_validation_errors_name_node_input_and_fix(edit, needles, tmp_path):
    prompt = api_chain()
    edit(prompt)
    message = str(err(prompt))
    for needle in needles:
        assert needle in message, (needle, message)
    assert CALLS == {} and not (tmp_path / "out").exists()  # nothing ran, nothing written


def test_core_node_message_and_errors_are_collected():
    prompt = {"7": {"class_type": "KSampler", "inputs": {}}, "8": {"class_type": "Nope", "inputs": {}}}
    error = err(prompt)
    assert error.messages[0] == ("node 7 (KSampler) is a ComfyUI core node the headless runner cannot run; "
                                 "run this workflow in ComfyUI or pass --server http://127.0.0.1:8188")
    assert len(error.messages) == 2
    prompt = api_chain(seed=2000)
    prompt["2"]["inputs"].pop("suffix")
    assert len(err(prompt).messages) == 2
    assert "no output node" in str(err({"1": api_chain()["1"]}))


def test_validate_inputs_replaces_builtin_checks_for_its_inputs():
    prompt = {"1": {"class_type": "ToyEven", "inputs": {"n": 50}},  # above max, but VALIDATE_INPUTS owns n
              "2": {"class_type": "ToyCollect", "inputs": {"text": ["1", 0]}}}
    assert runner.execute_prompt(prompt, node_classes=TOYS).outputs["2"]["text"] == ["50"]
    prompt["1"]["inputs"]["n"] = 3
    assert "node 1 (ToyEven)" in str(err(prompt)) and "n must be even, got 3" in str(err(prompt))


def test_wrong_widget_count_is_a_clear_error():
    ui = ui_chain()
    ui["nodes"][0]["widgets_values"] = ["cat", 5, "upper"]  # saved without the control value
    with pytest.raises(runner.WorkflowError, match=r"node 1 \(ToyText\).*3 widget values.*need 4.*not a control"):
        runner.to_api_prompt(ui, TOYS)


def test_set_parses_by_declared_type_and_rejects_unknowns():
    prompt = runner.to_api_prompt(api_chain(), TOYS)
    prompt["2"]["inputs"]["suffix"] = ["1", 0]  # a linked widget: --set replaces the link
    runner.apply_sets(prompt, ["1.seed=42", "1.case=lower", "2.suffix=hello", "1.text=a=b"], TOYS)
    assert prompt["1"]["inputs"]["seed"] == 42 and prompt["1"]["inputs"]["text"] == "a=b"
    assert prompt["2"]["inputs"]["suffix"] == "hello"
    assert prompt["1"]["inputs"]["case"] == "lower"
    other = {"8": {"class_type": "ToyOther", "inputs": {}}, "9": {"class_type": "ToyImage", "inputs": {}}}
    runner.apply_sets(other, ["8.flag=false", "9.value=0.25"], TOYS)
    assert other["8"]["inputs"]["flag"] is False and other["9"]["inputs"]["value"] == 0.25
    with pytest.raises(runner.WorkflowError) as info:
        runner.apply_sets(prompt, ["5.seed=1", "1.nope=1", "1.seed=abc", "8.flag=maybe", "3.text=x", "bad"],
                          {**TOYS})
    text = str(info.value)
    for needle in ["no node 5", "no input 'nope'", "'abc' is not a INT", "no node 8", "socket", "NODE_ID.INPUT=VALUE"]:
        assert needle in text, needle
    assert runner.parse_set("12.filename_prefix=x.png") == ("12", "filename_prefix", "x.png")


def test_save_image_png_metadata_round_trip_and_counter(tmp_path):
    ui = {"links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 0, 3, 0, "IMAGE"]], "nodes": [
        node(1, "ToyImage", [0.25, 8]),
        node(2, "SaveImage", ["sub/run"], inputs=[{"name": "images", "type": "IMAGE", "link": 1}]),
        node(3, "PreviewImage", [], inputs=[{"name": "images", "type": "IMAGE", "link": 2}])]}
    result = runner.run_workflow(ui, node_classes=TOYS, output_dir=tmp_path / "o2")
    saved = tmp_path / "o2" / "sub" / "run_00001_.png"
    assert saved in result.files and result.outputs["2"]["images"] == [
        {"filename": "run_00001_.png", "subfolder": "sub", "type": "output"}]
    preview = [f for f in result.files if f != saved][0]
    assert preview.parent == tmp_path / "o2" / "temp" and preview.is_file()
    with Image.open(saved) as img:
        assert img.size == (8, 8) and np.asarray(img)[0, 0, 0] == 63
        assert json.loads(img.text["workflow"]) == ui
        assert strip_meta(json.loads(img.text["prompt"])) == strip_meta(runner.to_api_prompt(ui, runner.node_class_mappings(TOYS)))
    again = runner.run_workflow(ui, node_classes=TOYS, output_dir=tmp_path / "o2", cache=False)
    assert tmp_path / "o2" / "sub" / "run_00002_.png" in again.files
    bad = copy.deepcopy(ui)
    bad["nodes"][1]["widgets_values"] = ["../escape"]
    with pytest.raises(runner.NodeExecutionError, match="outside the output folder"):
        runner.run_workflow(bad, node_classes=TOYS, output_dir=tmp_path / "o2")


def test_load_image_alpha_mask_frames_and_upload_widget(tmp_path):
    alpha = np.tile(np.arange(16, dtype=np.uint8) * 16, (12, 1))
    rgba = np.dstack([np.full((12, 16, 3), 200, np.uint8), alpha])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "in" / "a.png")
    Image.new("RGB", (10, 10), (255, 0, 0)).save(tmp_path / "in" / "rgb.jpg")
    frames = [Image.new("RGB", (6, 6), c) for c in ((0, 0, 0), (255, 255, 255))]
    frames[0].save(tmp_path / "in" / "anim.gif", save_all=True, append_images=frames[1:])
    ui = {"links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 1, 2, 1, "MASK"]], "nodes": [
        node(1, "LoadImage", ["a.png", "image"]),
        node(2, "ToyProbe", [], inputs=[{"name": "image", "type": "IMAGE", "link": 1},
                                        {"name": "mask", "type": "MASK", "link": 2}])]}
    ui_out = runner.run_workflow(ui, node_classes=TOYS).outputs["2"]
    assert ui_out["image"] == [[1, 12, 16, 3]]
    np.testing.assert_allclose(np.array(ui_out["mask"][0])[0], 1.0 - alpha / 255.0, atol=1e-6)
    out = runner.run_workflow(ui, node_classes=TOYS, sets=["1.image=rgb.jpg"]).outputs["2"]
    assert out["image"] == [[1, 10, 10, 3]] and np.array(out["mask"][0]).shape == (1, 64, 64)
    assert not np.array(out["mask"][0]).any()
    out = runner.run_workflow(ui, node_classes=TOYS, sets=["1.image=anim.gif"]).outputs["2"]
    assert out["image"] == [[2, 6, 6, 3]]
    with pytest.raises(runner.WorkflowError, match=r"node 1 \(LoadImage\).*missing.png"):
        runner.run_workflow(ui, node_classes=TOYS, sets=["1.image=missing.png"])


def test_output_cache_skips_unchanged_nodes_and_reuses_instances():
    first = runner.execute_prompt(api_chain(), node_classes=TOYS)
    assert set(first.executed) == {"1", "2", "3"}
    second = runner.execute_prompt(api_chain(), node_classes=TOYS)
    assert second.executed == () and second.outputs == first.outputs
    third = runner.execute_prompt(api_chain(suffix="?"), node_classes=TOYS)
    assert third.executed == ("2", "3") and third.outputs["3"]["text"] == ["CAT#5??"]
    assert third.outputs["3"]["instance"] == first.outputs["3"]["instance"]  # warm instance reused
    off = runner.execute_prompt(api_chain(suffix="?"), node_classes=TOYS, cache=False)
    assert off.executed == ("1", "2", "3") and CALLS["ToyText"] == 2


def test_interrupt_stops_before_any_node_runs():
    host.request_interrupt()
    with pytest.raises(host.Interrupted):
        runner.execute_prompt(api_chain(), node_classes=TOYS)
    assert CALLS == {}
    assert runner.execute_prompt(api_chain(), node_classes=TOYS).outputs["3"]["text"] == ["CAT#5!!"]


def _subprocess(args, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run([sys.executable, "-m", "llm_assist", "run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_runs_a_workflow_and_refuses_an_invalid_one(tmp_path):
    wf = {"1": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 8, "height": 6}},
          "2": {"class_type": "MaskToImage", "inputs": {"mask": ["1", 0]}},
          "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "cli"}}}
    (tmp_path / "wf.json").write_text(json.dumps(wf))
    done = _subprocess(["wf.json", "--output", "res", "--report", "rep/r.json", "--set", "1.value=0.25"], tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "rep" / "r.json").read_text())
    assert set(report) == {"prompt_id", "outputs", "files", "seconds"}
    assert [os.path.basename(f) for f in report["files"]] == ["cli_00001_.png"]
    with Image.open(tmp_path / "res" / "cli_00001_.png") as img:
        assert img.size == (8, 6) and np.asarray(img)[0, 0, 0] == 63
    wf["1"]["inputs"]["width"] = 0
    (tmp_path / "bad.json").write_text(json.dumps(wf))
    failed = _subprocess(["bad.json", "--output", "res2", "--report", "r2.json"], tmp_path)
    assert failed.returncode != 0 and "node 1 (SolidMask)" in failed.stderr and "'width'" in failed.stderr
    assert not (tmp_path / "res2").exists() and not (tmp_path / "r2.json").exists()


class _FakeComfy(BaseHTTPRequestHandler):
    classes = {**TOYS, **runner.node_class_mappings({})}
    received: list = []
    png = b""
    fail = None  # None, "validation" or "execution"

    def log_message(self, *args):
        pass

    def _send(self, status, payload, raw=False):
        body = payload if raw else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/object_info":
            return self._send(200, {k: object_info_entry(c) for k, c in self.classes.items()})
        if url.path.startswith("/history/"):
            if len(self.received) < 2:  # "still running" on the first poll
                self.received.append("poll")
                return self._send(200, {})
            status = {"status_str": "success", "completed": True, "messages": []}
            if self.fail == "execution":
                status = {"status_str": "error", "completed": False, "messages": [["execution_error", {
                    "node_id": "2", "node_type": "ToySuffix", "exception_type": "RuntimeError",
                    "exception_message": "boom"}]]}
            return self._send(200, {"p1": {"outputs": {"3": {"images": [
                {"filename": "x_00001_.png", "subfolder": "s", "type": "output"}]}}, "status": status}})
        if url.path == "/view" and parse_qs(url.query)["filename"] == ["x_00001_.png"]:
            return self._send(200, self.png, raw=True)
        return self._send(404, {})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append(body)
        if self.fail == "validation":
            return self._send(400, {"error": {"type": "prompt_outputs_failed_validation", "message": "x", "details": ""},
                                    "node_errors": {"1": {"class_type": "ToyText", "errors": [{
                                        "type": "value_bigger_than_max", "message": "Value 5000 bigger than max of 1000",
                                        "details": "seed", "extra_info": {"input_name": "seed", "received_value": 5000}}]}}})
        return self._send(200, {"prompt_id": "p1", "number": 1, "node_errors": {}})


@pytest.fixture()
def fake_server(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "x.png")
    _FakeComfy.png, _FakeComfy.received, _FakeComfy.fail = (tmp_path / "x.png").read_bytes(), [], None
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeComfy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_server_mode_converts_submits_polls_and_downloads(fake_server, tmp_path):
    ui = ui_chain()
    result = run_on_server(ui, fake_server, sets=["1.seed=9"], output_dir=tmp_path / "dl", poll_interval=0.01)
    body = _FakeComfy.received[0]
    assert strip_meta(body["prompt"]) == strip_meta(runner.apply_sets(runner.to_api_prompt(ui, TOYS), ["1.seed=9"], TOYS))
    saved = body["extra_data"]["extra_pnginfo"]["workflow"]  # holds the --set value (provenance)
    assert saved["nodes"][0]["widgets_values"] == ["cat", 9, "fixed", "upper"]
    assert strip_meta(runner.to_api_prompt(saved, TOYS)) == strip_meta(body["prompt"])
    assert result.prompt_id == "p1" and result.files == [tmp_path / "dl" / "s" / "x_00001_.png"]
    assert result.files[0].read_bytes() == _FakeComfy.png
    _FakeComfy.received, _FakeComfy.fail = [], "validation"
    with pytest.raises(runner.WorkflowError, match=r"node 1 \(ToyText\).*bigger than max.*seed"):
        run_on_server(ui, fake_server, output_dir=tmp_path / "dl2")
    _FakeComfy.received, _FakeComfy.fail = [], "execution"
    with pytest.raises(ServerError, match=r"node 2 \(ToySuffix\) failed: RuntimeError: boom"):
        run_on_server(ui, fake_server, output_dir=tmp_path / "dl3", poll_interval=0.01)
    assert not (tmp_path / "dl2").exists() and not (tmp_path / "dl3").exists()
