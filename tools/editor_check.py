"""Check the example workflows in a real ComfyUI editor and make their thumbnails.

    python -m llm_assist.tools.editor_check [--comfyui DIR] [--python PY] [--url URL]
        [--out DIR] [--thumbnails] [--execute]

1. Starts ComfyUI (``DIR/main.py --cpu``, 127.0.0.1 only) in a temporary base directory whose
   custom_nodes/comfyui-llm-assist links to this checkout and whose models/ holds the tiny models
   (or uses ``--url`` of a running one).
2. Runs ``tools/editor_check.mjs`` (playwright-core + Chromium): the template listing, each
   workflow loaded in the editor (dialogs, errors, link types, round trip, screenshot).
3. Compares the API prompt the editor makes of each workflow (``graphToPrompt``) with the
   headless runner's ``to_api_prompt`` of the same file, using the server's /object_info.
4. ``--execute``: queues the editor's prompt of every workflow but native_bridge on the server,
   loaders switched to the tiny models and native-sampler branches left out (ComfyUI cannot load
   the tiny checkpoint), and waits for it to finish without error. Workflows with a Connect Model
   Server node run only with ``--server-url`` (an OpenAI-compatible server on 127.0.0.1, set as
   their base_url); without it they are listed as skipped.
5. ``--thumbnails``: writes the README figures docs/figures/<name>-<i>.png (the graph at the editor's
   100 % zoom, in panels of whole node columns) and the template thumbnails example_workflows/<name>.jpg
   (the node that makes the result, legible in the template browser's 256 px card), and the README
   lines for the figures (<out>/figures.md).

``--only NAME[,NAME]``: execute and write figures of these workflows only (all are still loaded and checked).

Needs: a ComfyUI checkout with its own Python (COMFYUI_DIR / COMFYUI_PYTHON), Node.js with
playwright-core (PLAYWRIGHT_NODE_MODULES) and Chromium (CHROMIUM). Never commit what it starts.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / "example_workflows"
PACK = "comfyui-llm-assist"


def _get(url: str, timeout: float = 10.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
        return json.loads(response.read().decode("utf-8"))


def _post(url: str, data: dict, timeout: float = 30.0):
    request = urllib.request.Request(url, json.dumps(data).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
        return json.loads(response.read().decode("utf-8"))


def start_comfyui(comfy_dir: Path, python: str, base: Path, port: int):
    """Start ComfyUI with the pack linked in and the tiny models; returns (process, url)."""
    from ..core.sample_images import write_example_images
    from ..core.tiny_models import build_tiny_models

    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / PACK
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    if not (base / "models" / ".complete").is_file():
        build_tiny_models(base / "models")
        (base / "models" / ".complete").write_text("ok\n")
    write_example_images(base / "input", size=512)
    log = open(base / "comfyui.log", "w")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--base-directory", str(base),
         "--disable-auto-launch", "--database-url", "sqlite:///:memory:"],
        cwd=comfy_dir, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 240
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ComfyUI exited: see {base / 'comfyui.log'}")
        try:
            _get(f"{url}/system_stats", timeout=2)
            return proc, url
        except OSError:
            time.sleep(1)
    proc.terminate()
    raise RuntimeError(f"ComfyUI did not answer within 240 s: see {base / 'comfyui.log'}")


def compare_prompts(url: str, out: Path) -> dict:
    """name -> list of differences between the editor's API prompt and the runner's."""
    from ..runner.workflow import to_api_prompt

    object_info = _get(f"{url}/object_info", timeout=60)
    result = {}
    for path in sorted(WORKFLOWS.glob("*.json")):
        editor_file = out / f"{path.stem}.prompt.json"
        if not editor_file.is_file():
            result[path.stem] = ["the editor made no prompt"]
            continue
        editor = json.loads(editor_file.read_text())
        ours = to_api_prompt(path, object_info)
        diffs = []
        if set(editor) != set(ours):
            diffs.append(f"node ids differ: editor {sorted(editor)} runner {sorted(ours)}")
        for node_id in sorted(set(editor) & set(ours), key=int):
            a, b = editor[node_id], ours[node_id]
            if a["class_type"] != b["class_type"]:
                diffs.append(f"node {node_id}: class {a['class_type']} vs {b['class_type']}")
            info = object_info.get(b["class_type"], {}).get("input", {})
            declared = set(info.get("required", {})) | set(info.get("optional", {}))
            for name in sorted(set(a["inputs"]) | set(b["inputs"])):
                if name not in declared and name not in b["inputs"]:
                    continue  # frontend-only widgets (PreviewAny's "preview") the server ignores
                if a["inputs"].get(name) != b["inputs"].get(name):
                    diffs.append(f"node {node_id} ({b['class_type']}).{name}: editor {a['inputs'].get(name)!r} "
                                 f"runner {b['inputs'].get(name)!r}")
        result[path.stem] = diffs
    return result


def execute(url: str, out: Path, timeout: float = 600.0, server_url: str | None = None,
            only: set | None = None) -> dict:
    """Queue the editor's prompt of each workflow (tiny models) and wait: name -> status text."""
    from ..runner.tiny_sets import tiny_model_sets, without_native_branch
    from ..runner.workflow import apply_sets

    object_info = _get(f"{url}/object_info", timeout=60)
    status = {}
    for path in sorted(WORKFLOWS.glob("*.json")):
        if path.stem == "native_bridge" or (only and path.stem not in only):
            continue
        prompt = json.loads((out / f"{path.stem}.prompt.json").read_text())
        workflow = json.loads(path.read_text())
        if server_url is None and any(n.get("type") == "LLMAssistConnectModelServer" for n in workflow["nodes"]):
            status[path.stem] = "skipped: needs a model server (--server-url)"
            continue
        for node_id in without_native_branch(workflow)[1]:  # ComfyUI cannot load the tiny checkpoint
            prompt.pop(str(node_id), None)
        sets = tiny_model_sets(path, server_url=server_url)
        apply_sets(prompt, [s for s in sets if s.split(".", 1)[0] in prompt], object_info)
        try:
            queued = _post(f"{url}/prompt", {"prompt": prompt, "client_id": "llm-assist-editor-check",
                                             "extra_data": {"extra_pnginfo": {"workflow": workflow}}})
        except urllib.error.HTTPError as exc:
            status[path.stem] = f"refused: {exc.read().decode()[:2000]}"
            continue
        prompt_id, deadline, started = queued["prompt_id"], time.time() + timeout, time.time()
        while time.time() < deadline:
            entry = _get(f"{url}/history/{prompt_id}").get(prompt_id)
            if entry and entry.get("status", {}).get("completed") or (entry or {}).get("status", {}).get("status_str") == "error":
                state = entry["status"]["status_str"]
                messages = [m for m in entry["status"].get("messages", []) if m[0] == "execution_error"]
                status[path.stem] = f"{state} in {time.time() - started:.1f} s, {len(entry.get('outputs', {}))} output nodes" + (
                    f": {messages[0][1].get('exception_message', '')[:500]}" if messages else "")
                break
            time.sleep(1)
        else:
            status[path.stem] = f"still running after {timeout:.0f} s"
    return status


def thumbnails(report: dict, only: set | None = None) -> list[Path]:
    """Write the README figures and the template thumbnails from the editor's shots (``--figures``).

    docs/figures/<name>-<i>.png: panels of whole node columns at the editor's 100 % zoom, at most about
    900 px wide, so titles and widget values are legible in the README's column (PNG, 128 colours).
    example_workflows/<name>.jpg: the node that makes the workflow's result, 512 px square (the template
    browser shows it in a 256 px card). Older figures of the same workflow are removed.
    """
    from PIL import Image

    written = []
    figures = REPO / "docs" / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    for name, result in sorted(report["workflows"].items()):
        shots = result.get("figures")
        if not shots or (only and name not in only):
            continue
        keep = set()
        for index, panel in enumerate(shots["panels"], start=1):
            target = figures / f"{name}-{index}.png"
            image = Image.open(panel["file"]).convert("RGB")
            image.quantize(128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(target, optimize=True)
            keep.add(target)
            written.append(target)
        for stale in [figures / f"{name}.jpg", *figures.glob(f"{name}-*.png")]:
            if stale.is_file() and stale not in keep:
                stale.unlink()
        target = WORKFLOWS / f"{name}.jpg"
        image = Image.open(shots["thumbnail"]["file"]).convert("RGB")
        image.save(target, quality=88, optimize=True, progressive=True)
        written.append(target)
    return written


def figures_markdown(report: dict, only: set | None = None) -> str:
    """The README lines for the figures: a collapsible block per workflow (in the README table's order)."""
    readme = REPO / "README.md"
    order = re.findall(r"\(example_workflows/(\w+)\.json\)", readme.read_text()) if readme.is_file() else []
    lines = []
    for name in sorted(report["workflows"], key=lambda n: (order.index(n) if n in order else len(order), n)):
        if only and name not in only:
            continue
        panels = (report["workflows"][name].get("figures") or {}).get("panels", [])
        if not panels:
            continue
        lines.append(f"<details><summary>{name} in the editor ({len(panels)} pictures, left to right)</summary>\n")
        for index, panel in enumerate(panels, start=1):
            lines.append(f"![{name} {index}/{len(panels)}: {', '.join(panel['titles'])}](docs/figures/{name}-{index}.png)\n")
        lines.append("</details>\n")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", type=Path, default=Path(os.environ.get("COMFYUI_DIR", "/work/comfyui/src")))
    parser.add_argument("--python", default=os.environ.get("COMFYUI_PYTHON"))
    parser.add_argument("--url", help="use this running ComfyUI (pack installed as comfyui-llm-assist) instead")
    parser.add_argument("--port", type=int, default=8199)
    parser.add_argument("--out", type=Path, default=REPO / "output" / "editor_check")
    parser.add_argument("--node", default="node")
    parser.add_argument("--node-modules", default=os.environ.get("PLAYWRIGHT_NODE_MODULES", "/work/pw/node_modules"))
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    parser.add_argument("--thumbnails", action="store_true", help="write the .jpg thumbnails and docs/figures/*.png")
    parser.add_argument("--execute", action="store_true", help="also run the editor's prompts on the server")
    parser.add_argument("--server-url", help="with --execute: base_url for Connect Model Server nodes (127.0.0.1)")
    parser.add_argument("--only", help="execute / write figures of these workflows only (comma list)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    proc, url = None, args.url
    base = None
    try:
        if url is None:
            base = Path(tempfile.mkdtemp(prefix="llma-comfy-"))
            python = args.python or str(args.comfyui.parent / "venv" / "bin" / "python")
            proc, url = start_comfyui(args.comfyui, python, base, args.port)
        code = subprocess.call([args.node, str(REPO / "tools" / "editor_check.mjs"), "--url", url, "--workflows",
                                str(WORKFLOWS), "--out", str(args.out), "--pack", PACK, "--node-modules",
                                args.node_modules, "--chromium", args.chromium]
                               + (["--figures"] if args.thumbnails else []))
        report = json.loads((args.out / "report.json").read_text())
        report["prompt_differences"] = compare_prompts(url, args.out)
        for name, diffs in report["prompt_differences"].items():
            print(f"{'ok  ' if not diffs else 'FAIL'} {name}: editor prompt == runner prompt" + (f": {diffs}" if diffs else ""))
        ok = code == 0 and not any(report["prompt_differences"].values())
        only = {n.strip() for n in args.only.split(",") if n.strip()} if args.only else None
        if args.execute:
            report["executed"] = execute(url, args.out, server_url=args.server_url, only=only)
            for name, state in report["executed"].items():
                mark = "ok  " if state.startswith("success") else "skip" if state.startswith("skipped") else "FAIL"
                print(f"{mark} {name}: executed in ComfyUI: {state}")
            ok = ok and all(s.startswith(("success", "skipped")) for s in report["executed"].values())
        (args.out / "report.json").write_text(json.dumps(report, indent=2))
        if args.thumbnails:
            for path in thumbnails(report, only):
                print(f"wrote {path.relative_to(REPO)}")
            (args.out / "figures.md").write_text(figures_markdown(report, only) + "\n")
            print(f"README figure lines: {args.out / 'figures.md'}")
        print(f"editor check {'passed' if ok else 'FAILED'}; report: {args.out / 'report.json'}")
        return 0 if ok else 1
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
