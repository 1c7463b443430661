"""Safety (issue 7): no unpickling, no remote code, no network without 'allow download', no path
escapes, and no eval/exec/runtime installs anywhere in the pack's source."""
from __future__ import annotations

import ast
import pickle
import shutil
import socket
from pathlib import Path

import pytest

import llm_assist
from llm_assist.core import host

NODES = llm_assist.NODE_CLASS_MAPPINGS
ROOT = Path(llm_assist.__file__).resolve().parent
# reviewed exceptions: (file, call) -> why it is safe
ALLOWED = {("cli/__init__.py", "importlib.import_module() of a computed name"):
           "the module name comes from the fixed _COMMANDS table, never from user text"}
SKIP_DIRS = {"tests", "bench", "tools", ".venv", "example_workflows", "__pycache__", ".git", ".ci"}

# loader node -> (models kind, tiny model, extra kwargs)
LOADERS = {
    "LLMAssistLoadCaptioner": ("LLM", "tiny-blip"),
    "LLMAssistLoadLanguageModel": ("LLM", "tiny-qwen2-chat"),
    "LLMAssistLoadImageEncoder": ("clip_vision", "tiny-clip"),
}
ALL_LOADERS = [*LOADERS, "LLMAssistLoadPipeline"]


def _load(node: str, **kwargs):
    cls = NODES[node]
    base = {"device": "cpu", "dtype": "fp32"}
    if node != "LLMAssistLoadPipeline":
        base.update(quantization="none", attention="auto", trust_remote_code=False, allow_download=False,
                    keep_loaded=False)
    else:
        base.update(scheduler=cls.INPUT_TYPES()["required"]["scheduler"][1]["default"])
    base.update(kwargs)
    return getattr(cls(), cls.FUNCTION)(**base)[0]


# ---------------------------------------------------------------- source scan
def _pack_sources() -> list[Path]:
    files = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts and (rel.parts[0] in SKIP_DIRS or rel.parts[0].endswith(".egg-info")
                          or rel.parts[0].startswith(".venv")):  # any virtual environment (.venv-floor...)
            continue
        files.append(path)
    return files


def _dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _offences(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        consts = [a.value for a in ast.walk(node) if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if name in ("eval", "exec", "compile", "builtins.eval", "builtins.exec", "builtins.compile"):
            found.append((node.lineno, f"{name}()"))
        elif name in ("os.system", "os.popen", "os.execv", "os.execvp", "os.spawnv", "os.spawnl"):
            found.append((node.lineno, f"{name}()"))
        elif name.startswith("subprocess.") and any("pip" in c.split() or c.endswith("pip") for c in consts):
            found.append((node.lineno, f"{name}() running pip"))
        elif name.endswith("pip.main") or name.endswith("_internal.main"):
            found.append((node.lineno, f"{name}() (runtime pip)"))
        elif name in ("importlib.import_module", "__import__", "import_module") and not (
                node.args and isinstance(node.args[0], ast.Constant)):
            found.append((node.lineno, f"{name}() of a computed name"))
        elif name in ("pickle.load", "pickle.loads", "cPickle.load", "dill.load", "dill.loads", "marshal.loads"):
            found.append((node.lineno, f"{name}()"))
        elif name == "torch.load" or name.endswith(".torch.load"):
            ok = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                     for k in node.keywords)
            if not ok:
                found.append((node.lineno, "torch.load() without weights_only=True"))
    return found


def test_scanner_catches_what_it_must():
    bad = ("eval('1')\nexec('x=1')\nimport os, subprocess, pickle, torch, importlib\nos.system('ls')\n"
           "subprocess.run(['python', '-m', 'pip', 'install', 'x'])\nimportlib.import_module(name)\n"
           "pickle.loads(b'')\ntorch.load('f.pt')\ntorch.load('f.pt', weights_only=True)\nre.compile('x')\n")
    found = [what for _, what in _offences(ast.parse(bad))]
    assert found == ["eval()", "exec()", "os.system()", "subprocess.run() running pip",
                     "importlib.import_module() of a computed name", "pickle.loads()",
                     "torch.load() without weights_only=True"]


def test_pack_source_has_no_eval_exec_pip_or_unpickling():
    files = _pack_sources()
    assert len(files) > 20, "the scan found too few files: is ROOT right?"
    offenders = []
    for path in files:
        for line, what in _offences(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if (path.relative_to(ROOT).as_posix(), what) not in ALLOWED:
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert not offenders, "forbidden calls (Comfy Registry rules):\n" + "\n".join(offenders)


# ---------------------------------------------------------------- models root copies
@pytest.fixture()
def root(tiny_models, tmp_path):
    """A fresh models root (copies are cheap: the tiny models are a few MB)."""
    new = tmp_path / "models"
    for kind in ("LLM", "clip_vision", "diffusers", "checkpoints"):
        (new / kind).mkdir(parents=True)
    previous = host.set_models_root(new)
    yield new
    host.set_models_root(previous)


def _copy(tiny_models, kind, name, root, as_name):
    dst = root / kind / as_name
    shutil.copytree(tiny_models / kind / name, dst)
    return dst


class _Marker:
    """Unpickling this creates the marker file (what a malicious pickle would do)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("node", ALL_LOADERS)
def test_pickle_weights_are_refused_and_never_unpickled(node, tiny_models, root, tmp_path):
    marker = tmp_path / "unpickled.marker"
    payload = pickle.dumps(_Marker(marker))
    # the combo never lists pickles (test_lists_show_only_what_the_loader_loads); the loader refuses
    # them too when the name arrives another way (a typed repo_id, the Python API)
    if node == "LLMAssistLoadPipeline":
        from llm_assist.core.diffusion.loading import load_pipeline
        from llm_assist.core.hf_loading import LoadOptions

        (root / "checkpoints" / "evil.ckpt").write_bytes(payload)
        with pytest.raises(ValueError, match="not one of its options"):
            _load(node, model="evil.ckpt")
        with pytest.raises(ValueError, match="safetensors"):
            load_pipeline("evil.ckpt", options=LoadOptions(device="cpu"))
    else:
        kind, name = LOADERS[node]
        folder = _copy(tiny_models, kind, name, root, "evil")
        (folder / "model.safetensors").unlink()
        (folder / "pytorch_model.bin").write_bytes(payload)
        with pytest.raises(ValueError, match="safetensors"):
            _load(node, model=NODES[node].INPUT_TYPES()["required"]["model"][0][0], repo_id="evil")
    assert not marker.exists(), "a pickle was unpickled"


EVIL_CODE = "from pathlib import Path\nPath({marker!r}).write_text('ran')\n"


@pytest.mark.parametrize("node", ["LLMAssistLoadCaptioner", "LLMAssistLoadLanguageModel", "LLMAssistLoadImageEncoder"])
def test_remote_code_is_refused_with_trust_off_and_never_runs(node, tiny_models, root, tmp_path):
    import json

    marker = tmp_path / "remote_code.marker"
    kind, name = LOADERS[node]
    folder = _copy(tiny_models, kind, name, root, "custom-code")
    (folder / "evil.py").write_text(EVIL_CODE.format(marker=str(marker)))
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel",
                          "AutoModelForCausalLM": "evil.EvilModel", "AutoModelForImageTextToText": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    try:
        _load(node, model="custom-code")
    except ValueError as exc:
        assert "trust" in str(exc).lower() and "remote code" in str(exc).lower().replace("_", " "), str(exc)
    else:
        pytest.fail(f"{node} loaded a model folder that asks for custom code with trust_remote_code off")
    assert not marker.exists(), "code from the model folder ran"


@pytest.fixture()
def no_network(monkeypatch):
    calls = []

    def refuse(self, *args, **kwargs):
        calls.append(args)
        raise AssertionError(f"network connection attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: refuse(None, *a))
    return calls


@pytest.mark.parametrize("node", ALL_LOADERS)
def test_repo_id_without_allow_download_is_refused_without_network(node, root, no_network, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the switch alone must stop it
    if node == "LLMAssistLoadPipeline":
        from llm_assist.core.diffusion.loading import load_pipeline
        from llm_assist.core.hf_loading import LoadOptions

        with pytest.raises(ValueError, match="allow download"):
            load_pipeline("some-org/some-model", options=LoadOptions(device="cpu"))
    else:
        with pytest.raises(ValueError, match="allow download"):
            _load(node, model=NODES[node].INPUT_TYPES()["required"]["model"][0][0], repo_id="some-org/some-model")
    assert no_network == []


@pytest.mark.parametrize("node", ALL_LOADERS)
@pytest.mark.parametrize("bad", ["../escape", "/etc", "a/../../escape", "..\\escape"])
def test_model_names_cannot_escape_the_models_folder(node, bad, root):
    from llm_assist.core.hf_loading import LoadOptions

    if node == "LLMAssistLoadPipeline":
        from llm_assist.core.diffusion.loading import load_pipeline

        with pytest.raises(ValueError, match="outside|not a folder"):
            load_pipeline(bad, options=LoadOptions(device="cpu"))
        with pytest.raises(ValueError, match="outside"):
            load_pipeline(bad + ".safetensors", options=LoadOptions(device="cpu"))
    else:
        with pytest.raises(ValueError, match="outside|not a folder"):
            _load(node, model=NODES[node].INPUT_TYPES()["required"]["model"][0][0], repo_id=bad)


@pytest.mark.parametrize("node", ALL_LOADERS)
def test_a_symlink_the_owner_put_in_the_models_folder_is_followed(node, tiny_models, root, tmp_path):
    """Models shared from another disk through a symlink load (as in ComfyUI core); a name from the
    workflow that escapes stays refused (test above)."""
    other_disk = tmp_path / "other-disk"
    other_disk.mkdir()
    if node == "LLMAssistLoadPipeline":
        shutil.copytree(tiny_models / "diffusers" / "tiny-sd15", other_disk / "tiny-sd15")
        (root / "diffusers" / "linked").symlink_to(other_disk / "tiny-sd15", target_is_directory=True)
    else:
        kind, name = LOADERS[node]
        shutil.copytree(tiny_models / kind / name, other_disk / name)
        (root / kind / "linked").symlink_to(other_disk / name, target_is_directory=True)
    kind = "diffusers" if node == "LLMAssistLoadPipeline" else LOADERS[node][0]
    assert "linked" in NODES[node].INPUT_TYPES()["required"]["model"][0]
    assert host.resolve_model(kind, "linked").is_relative_to(other_disk.resolve())
    assert type(_load(node, model="linked")).__name__ in ("Captioner", "LanguageModel", "ImageEncoder", "PipelineHandle")


@pytest.mark.parametrize("node", ALL_LOADERS)
@pytest.mark.parametrize("ask", ["allow_download", "trust_remote_code"])
def test_widgets_ask_only_the_owner_grants(node, ask, tiny_models, root, tmp_path, no_network, monkeypatch):
    """allow_download / trust_remote_code on a loader without the owner's grant: refused before
    anything is fetched or any code from the model folder runs."""
    import json

    from llm_assist.core import owner

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the grant alone must stop it
    if ask == "trust_remote_code" and node == "LLMAssistLoadPipeline":
        pytest.skip("Load Diffusion Pipeline has no trust_remote_code widget")
    for var in owner.KEYS.values():
        monkeypatch.delenv(var, raising=False)
    owner.reload()
    marker = tmp_path / "remote_code.marker"
    model = "some-org/some-model"
    if ask == "trust_remote_code":
        kind, name = LOADERS[node]
        folder = _copy(tiny_models, kind, name, root, "custom-code")
        (folder / "evil.py").write_text(EVIL_CODE.format(marker=str(marker)))
        config = json.loads((folder / "config.json").read_text())
        config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
        (folder / "config.json").write_text(json.dumps(config))
        model = "custom-code"
    kwargs = {ask: True}
    if node == "LLMAssistLoadPipeline":
        with pytest.raises(owner.NotGranted, match="allow_download.*server owner.*LLM_ASSIST_ALLOW_DOWNLOAD=1"):
            _load(node, model=NODES[node].INPUT_TYPES()["required"]["model"][0][0], **kwargs)
    else:
        first = NODES[node].INPUT_TYPES()["required"]["model"][0][0]
        args = {"model": model} if ask == "trust_remote_code" else {"model": first, "repo_id": model}
        with pytest.raises(owner.NotGranted, match=f"{ask}.*server owner.*LLM_ASSIST_{ask.upper()}=1"):
            _load(node, **args, **kwargs)
    assert no_network == [] and not marker.exists()


def test_save_captions_cannot_write_outside_its_folder(tmp_path):
    out = tmp_path / "output"
    out.mkdir()
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(b"")
    previous = host.set_output_directory(out)
    try:
        node = NODES["LLMAssistSaveCaptions"]()
        for folder in ("../escaped", "sub/../../escaped", "../../../../tmp/escaped"):
            with pytest.raises(ValueError, match="outside"):
                node.save(["a cat"], [str(images / "a.png")], mode=["overwrite"], output_folder=[folder])
        link = out / "link"
        link.symlink_to(tmp_path, target_is_directory=True)
        with pytest.raises(ValueError, match="outside"):
            node.save(["a cat"], [str(images / "a.png")], mode=["overwrite"], output_folder=["link/escaped"])
    finally:
        host.set_output_directory(previous)
    written = [p for p in tmp_path.rglob("*.txt")]
    assert written == [], f"caption files written: {written}"


@pytest.mark.parametrize("prefix", ["../escaped", "/tmp/escaped_abs", "a/../../escaped"])
def test_save_image_cannot_write_outside_the_output_folder(prefix, tmp_path):
    import torch

    from llm_assist.runner.stand_ins import SaveImage

    out = tmp_path / "output"
    out.mkdir()
    previous = host.set_output_directory(out)
    try:
        SaveImage().save_images(torch.zeros(1, 8, 8, 3), filename_prefix=prefix)
    except (ValueError, Exception) as exc:  # noqa: BLE001 - any refusal is fine, a write outside is not
        assert "output" in str(exc).lower() or "outside" in str(exc).lower(), str(exc)
    finally:
        host.set_output_directory(previous)
    outside = [p for p in tmp_path.rglob("*.png") if out not in p.parents]
    assert outside == [], f"SaveImage wrote outside the output folder: {outside}"
    assert not Path("/tmp/escaped_abs_00001_.png").exists()


@pytest.mark.parametrize("node", ALL_LOADERS)
def test_lists_show_only_what_the_loader_loads(node, tiny_models, root):
    """No pickle checkpoint files and no pickle-only model folders in a loader's combo."""
    if node == "LLMAssistLoadPipeline":
        (root / "checkpoints" / "old.ckpt").write_bytes(b"x")
        (root / "checkpoints" / "old.pt").write_bytes(b"x")
        shutil.copy(next((tiny_models / "checkpoints").glob("*.safetensors")), root / "checkpoints" / "good.safetensors")
        folder = _copy(tiny_models, "diffusers", "tiny-sd15", root, "pickled-unet")
        for f in (folder / "unet").glob("*.safetensors"):
            f.rename(f.with_suffix(".bin"))
        _copy(tiny_models, "diffusers", "tiny-sd15", root, "good")
        bad, good = ["old.ckpt", "old.pt", "pickled-unet"], ["good.safetensors", "good"]
    else:
        kind, name = LOADERS[node]
        folder = _copy(tiny_models, kind, name, root, "pickled")
        (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
        _copy(tiny_models, kind, name, root, "good")
        bad, good = ["pickled"], ["good"]
    listed = NODES[node].INPUT_TYPES()["required"]["model"][0]
    assert set(good) <= set(listed) and not set(bad) & set(listed), listed


def test_a_pipeline_folder_with_custom_component_code_is_refused_and_never_runs(tiny_models, root, tmp_path):
    """Load Diffusion Pipeline has no trust switch: a model_index.json naming a component class from
    a .py in the folder is refused, and that .py never runs."""
    import json

    from llm_assist.core.diffusion.loading import load_pipeline
    from llm_assist.core.hf_loading import LoadOptions

    marker = tmp_path / "component_code.marker"
    folder = _copy(tiny_models, "diffusers", "tiny-sd15", root, "custom-unet")
    index = json.loads((folder / "model_index.json").read_text())
    index["unet"] = ["evil_unet", "EvilUNet"]
    (folder / "model_index.json").write_text(json.dumps(index))
    for where in (folder, folder / "unet"):
        (where / "evil_unet.py").write_text(EVIL_CODE.format(marker=str(marker)))
    with pytest.raises(ValueError, match="custom code.*LLM_ASSIST_TRUST_REMOTE_CODE"):
        load_pipeline("custom-unet", options=LoadOptions(device="cpu", dtype="fp32", keep_loaded=False))
    assert not marker.exists(), "code from the model folder ran"


def test_tiny_vae_list_hides_pickle_only_folders(tiny_models, root):
    (root / "vae_approx").mkdir()
    good = _copy(tiny_models, "vae_approx", next(p.name for p in (tiny_models / "vae_approx").iterdir()), root, "good")
    bad = shutil.copytree(good, root / "vae_approx" / "pickled")
    for f in bad.glob("*.safetensors"):
        f.rename(f.with_suffix(".bin"))
    listed = NODES["LLMAssistLoadPipeline"].INPUT_TYPES()["optional"]["tiny_vae"][0]
    assert "good" in listed and "pickled" not in listed, listed
