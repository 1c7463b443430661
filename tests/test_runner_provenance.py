"""Runner: the PNG's workflow reproduces the image after --set; limits are messages (issue 15 §4, §5).

Uses the toy nodes of test_runner. Generated cases: --set values (hypothesis), chain lengths,
nesting depths.
"""
from __future__ import annotations

import ast
import json
import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_runner import TOYS, _fresh, node, strip_meta  # noqa: F401 - _fresh is an autouse fixture

from llm_assist import runner
from llm_assist.core import host
from llm_assist.runner.cli import main as run_main
from llm_assist.runner.server import ServerError, run_on_server

RUNNER_DIR = Path(runner.__file__).parent


def ui_image(link_size_from_primitive=False):
    """ToyImage -> SaveImage; optionally ToyImage's size fed by a PrimitiveNode (widget converted to input)."""
    links = [[1, 1, 0, 2, 0, "IMAGE"]]
    image_inputs = []
    nodes = []
    if link_size_from_primitive:
        links.append([2, 5, 0, 1, 0, "INT"])
        image_inputs = [{"name": "size", "type": "INT", "widget": {"name": "size"}, "link": 2}]
        nodes.append(node(5, "PrimitiveNode", [8, "fixed"], outputs=[{"name": "INT", "type": "INT", "links": [2]}]))
    nodes += [node(1, "ToyImage", [0.25, 8], inputs=image_inputs,
                   outputs=[{"name": "IMAGE", "type": "IMAGE", "links": [1]}]),
              node(2, "SaveImage", ["prov"], inputs=[{"name": "images", "type": "IMAGE", "link": 1}])]
    return {"version": 0.4, "links": links, "nodes": nodes}


def _png_chunks(path):
    with Image.open(path) as img:
        return json.loads(img.text["prompt"]), json.loads(img.text["workflow"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.floats(0, 1, allow_nan=False).map(lambda v: round(v, 3)), size=st.integers(1, 16),
       primitive=st.booleans())
def test_png_workflow_reproduces_the_prompt_after_set(tmp_path_factory, value, size, primitive):
    out = tmp_path_factory.mktemp("o")
    ui = ui_image(primitive)
    result = runner.run_workflow(ui, node_classes=TOYS, output_dir=out, cache=False,
                                 sets=[f"1.value={value}", f"1.size={size}"])
    prompt, workflow = _png_chunks(result.files[0])
    assert prompt["1"]["inputs"]["value"] == value and prompt["1"]["inputs"]["size"] == size
    classes = runner.node_class_mappings(TOYS)
    restored = runner.to_api_prompt(workflow, classes)  # what the editor would queue from the PNG
    assert strip_meta(restored) == strip_meta(prompt)
    with Image.open(result.files[0]) as img:
        assert img.size == (size, size)
    assert ui == ui_image(primitive)  # the caller's workflow is not changed


def test_set_on_a_linked_widget_disconnects_it_in_the_saved_workflow():
    ui = ui_image()
    ui["links"].append([3, 6, 0, 1, 0, "INT"])
    ui["nodes"].append(node(6, "ToyEven", [4], outputs=[{"name": "TOY_TEXT", "type": "INT", "links": [3]}]))
    ui["nodes"][0]["inputs"] = [{"name": "size", "type": "INT", "widget": {"name": "size"}, "link": 3}]
    classes = runner.node_class_mappings(TOYS)
    prompt = runner.apply_sets(runner.to_api_prompt(ui, classes), ["1.size=5"], classes)
    saved = runner.workflow.ui_with_sets(ui, prompt, ["1.size=5"], classes)
    assert strip_meta(runner.to_api_prompt(saved, classes))["1"] == strip_meta(prompt)["1"]
    assert all(link[0] != 3 for link in saved["links"]) and saved["nodes"][-1]["outputs"][0]["links"] == []


@pytest.mark.parametrize("length", [10, 1500, 4000])
def test_long_chains_validate_and_run_without_recursion(length):
    prompt = {"0": {"class_type": "ToyText", "inputs": {"text": "a", "seed": 1, "case": "lower"}}}
    for i in range(1, length):
        prompt[str(i)] = {"class_type": "ToySuffix", "inputs": {"text": [str(i - 1), 0], "suffix": "", "repeat": 1}}
    prompt["out"] = {"class_type": "ToyCollect", "inputs": {"text": [str(length - 1), 0]}}
    result = runner.execute_prompt(prompt, node_classes=TOYS, cache=False)
    assert result.outputs["out"]["text"] == ["a#1"] and len(result.executed) == length + 1
    prompt["0"]["inputs"]["text"] = [str(length - 1), 0]  # a cycle through the whole chain
    prompt["0"]["class_type"] = "ToySuffix"
    prompt["0"]["inputs"] = {"text": [str(length - 1), 0], "suffix": ""}
    with pytest.raises(runner.WorkflowError, match="cycle"):
        runner.execute_prompt(prompt, node_classes=TOYS)


@pytest.mark.parametrize("depth", [10, 400, 990, 5000, 100_000])
def test_deeply_nested_json_is_a_workflow_error(tmp_path, depth):
    value = "[" * depth + "]" * depth
    text = ('{"1": {"class_type": "ToyText", "inputs": {"text": %s, "seed": 1, "case": "upper"}}, '
            '"3": {"class_type": "ToyCollect", "inputs": {"text": ["1", 0]}}}' % value)
    (tmp_path / "deep.json").write_text(text)
    with pytest.raises(runner.WorkflowError) as info:  # never a RecursionError
        runner.run_workflow(tmp_path / "deep.json", node_classes=TOYS)
    # shallow: a list is not a STRING (core/input_rules.py); deep: refused while reading
    text = str(info.value)
    assert ("must be STRING" in text or "nested too deeply" in text) and (depth < 5000 or "nested" in text)


def test_utf8_bom_workflow_is_read(tmp_path):
    wf = {"1": {"class_type": "ToyText", "inputs": {"text": "bom", "seed": 1, "case": "lower"}},
          "3": {"class_type": "ToyCollect", "inputs": {"text": ["1", 0]}}}
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(wf).encode())
    assert runner.run_workflow(tmp_path / "bom.json", node_classes=TOYS).outputs["3"]["text"] == ["bom#1"]


def test_duplicate_node_ids_are_refused():
    ui = ui_image()
    ui["nodes"].append(node(1, "ToyText", ["dup", 1, "fixed", "upper"]))
    with pytest.raises(runner.WorkflowError, match="same id 1"):
        runner.to_api_prompt(ui, runner.node_class_mappings(TOYS))


def test_subgraph_and_unknown_class_messages_fit_server_users():
    ui = ui_image()
    ui["definitions"] = {"subgraphs": [{"id": "sg-1"}]}
    ui["nodes"].append(node(9, "sg-1"))
    ui["nodes"].append(node(10, "NotOnThatServer"))
    classes = runner.node_class_mappings(TOYS)
    with pytest.raises(runner.WorkflowError) as local:
        runner.to_api_prompt(ui, classes)
    assert "--server" in str(local.value)
    with pytest.raises(runner.WorkflowError) as remote:
        runner.to_api_prompt(ui, classes, server=True)
    text = str(remote.value)
    assert "--server" not in text and "Unpack Subgraph" in text and "install the custom node pack" in text


def _api_file(tmp_path):
    wf = {"1": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 8, "height": 6}},
          "2": {"class_type": "MaskToImage", "inputs": {"mask": ["1", 0]}},
          "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "rep"}}}
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(wf))
    return path


def test_report_refuses_devices_and_folders_before_running(tmp_path, capsys):
    from llm_assist.runner.cli import check_report_path

    wf = _api_file(tmp_path)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "to-fifo").symlink_to(tmp_path / "fifo")
    for bad in (tmp_path / "fifo", tmp_path / "to-fifo", tmp_path):
        code = run_main(["run", str(wf), "--output", str(tmp_path / "o"), "--report", str(bad)])
        assert code == 2 and not (tmp_path / "o").exists()  # refused before anything ran
        assert "only a regular file is written" in capsys.readouterr().err
    assert stat.S_ISFIFO(os.stat(tmp_path / "fifo").st_mode) and (tmp_path / "to-fifo").is_symlink()
    with pytest.raises(ValueError, match="a character device"):  # checked only: nothing is written there
        check_report_path("/dev/null")
    (tmp_path / "afile").write_text("x")
    assert run_main(["run", str(wf), "--output", str(tmp_path / "afile")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_report_follows_a_symlink_and_keeps_the_mode(tmp_path):
    wf = _api_file(tmp_path)
    real = tmp_path / "real.json"
    real.write_text("{}")
    real.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(real)
    assert run_main(["run", str(wf), "--output", str(tmp_path / "o"), "--report", str(link)]) == 0
    assert link.is_symlink() and json.loads(real.read_text())["files"]
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    previous = os.umask(0o022)
    try:
        assert run_main(["run", str(wf), "--output", str(tmp_path / "o"), "--report", str(tmp_path / "new.json")]) == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o644


def test_runner_modules_import_no_cycle():
    graph = {}
    for path in RUNNER_DIR.glob("*.py"):
        deps = set()
        for item in ast.walk(ast.parse(path.read_text())):
            if isinstance(item, ast.ImportFrom) and item.level == 1 and item.module:
                deps.add(item.module.split(".")[0])
        graph[path.stem] = deps & {p.stem for p in RUNNER_DIR.glob("*.py")}

    def reaches(start, goal, seen=()):
        return any(d == goal or (d not in seen and reaches(d, goal, seen + (d,))) for d in graph.get(start, ()))

    cycles = [m for m in graph if reaches(m, m)]
    assert not cycles, {m: graph[m] for m in cycles}


# ---------------------------------------------------------------- --server: cancel, no overwrite
class _SlowComfy(BaseHTTPRequestHandler):
    """A loopback server speaking ComfyUI's routes; the prompt is running and never finishes."""

    posts: list = []
    done = False
    png = b""

    def log_message(self, *args):
        pass

    def _send(self, status, payload, raw=False):
        body = payload if raw else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        from llm_assist.runner.server import object_info_entry

        if self.path == "/object_info":
            return self._send(200, {k: object_info_entry(c) for k, c in runner.node_class_mappings(TOYS).items()})
        if self.path.startswith("/history/"):
            if not self.done:
                return self._send(200, {})
            return self._send(200, {"p9": {"status": {"status_str": "success", "completed": True}, "outputs": {
                "2": {"images": [{"filename": "prov_00001_.png", "subfolder": "", "type": "output"}]}}}})
        if self.path == "/queue":
            return self._send(200, {"queue_running": [[0, "p9", {}, {}, []]], "queue_pending": []})
        if self.path.startswith("/view"):
            return self._send(200, self.png, raw=True)
        return self._send(404, {})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        self.posts.append((self.path, body))
        if self.path == "/prompt":
            return self._send(200, {"prompt_id": "p9", "number": 0, "node_errors": {}})
        return self._send(200, {})


@pytest.fixture()
def slow_server():
    _SlowComfy.posts, _SlowComfy.done = [], False
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowComfy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_server_timeout_and_interrupt_take_the_prompt_off_the_server(slow_server, tmp_path):
    with pytest.raises(ServerError, match="interrupted on the server"):
        run_on_server(ui_image(), slow_server, output_dir=tmp_path, timeout=0.3, poll_interval=0.05)
    paths = [(p, b) for p, b in _SlowComfy.posts if p != "/prompt"]
    assert ("/queue", {"delete": ["p9"]}) in paths and ("/interrupt", {"prompt_id": "p9"}) in paths
    _SlowComfy.posts = []
    timer = threading.Timer(0.3, host.request_interrupt)  # Ctrl-C in the CLI sets the same flag
    timer.start()
    with pytest.raises(host.interrupt_exception_types()):
        run_on_server(ui_image(), slow_server, output_dir=tmp_path, timeout=60, poll_interval=0.05)
    assert ("/interrupt", {"prompt_id": "p9"}) in _SlowComfy.posts


def test_server_downloads_never_replace_local_files(slow_server, tmp_path):
    Image.new("RGB", (4, 4), (255, 0, 0)).save(tmp_path / "server.png")
    _SlowComfy.png, _SlowComfy.done = (tmp_path / "server.png").read_bytes(), True
    mine = tmp_path / "dl" / "prov_00001_.png"
    mine.parent.mkdir()
    mine.write_bytes(b"my own file")
    result = run_on_server(ui_image(), slow_server, output_dir=tmp_path / "dl", poll_interval=0.01)
    assert mine.read_bytes() == b"my own file"
    assert result.files == [tmp_path / "dl" / "prov_00001__1.png"] and result.files[0].read_bytes() == _SlowComfy.png
