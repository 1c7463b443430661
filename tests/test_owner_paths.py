"""Folder nodes under the owner's path policy (issue 10 §2): with paths restricted (always inside
ComfyUI), Load Image Folder reads and Save Captions writes only under the input and output
folders and the owner's extra folders; nothing is read or written on refusal."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from llm_assist.core import host, owner
from llm_assist.nodes.io import LLMAssistLoadImageFolder, LLMAssistSaveCaptions


@pytest.fixture()
def server(tmp_path, monkeypatch):
    """A pretend server: input/, output/, custom_nodes/ and a folder elsewhere; paths restricted."""
    for var in owner.KEYS.values():
        monkeypatch.delenv(var, raising=False)
    owner.reload()
    base = tmp_path / "comfy"
    dirs = {name: base / name for name in ("input", "output", "custom_nodes")}
    dirs["elsewhere"] = tmp_path / "elsewhere"
    for d in dirs.values():
        d.mkdir(parents=True)
    for name in ("input", "elsewhere", "custom_nodes"):
        Image.new("RGB", (8, 8), (9, 9, 9)).save(dirs[name] / "a.png")
    prev_in, prev_out = host.set_input_directory(dirs["input"]), host.set_output_directory(dirs["output"])
    monkeypatch.setattr(host, "custom_nodes_dirs", lambda: [dirs["custom_nodes"]])
    with owner.override(restrict_paths=True):
        yield {k: v.resolve() for k, v in dirs.items()}
    host.set_input_directory(prev_in), host.set_output_directory(prev_out)
    owner.reload()


def _load(path):
    return LLMAssistLoadImageFolder().load(str(path), "*", "natural", 0, 0, False)


def _save(paths, folder="", mode="overwrite"):
    return LLMAssistSaveCaptions().save(["cap"] * len(paths), [str(p) for p in paths], [mode], [folder], [""], [""])


def _txt_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.txt"))


def test_reads_inside_the_input_folder_relative_or_absolute(server):
    sub = server["input"] / "set"
    sub.mkdir()
    Image.new("RGB", (8, 8)).save(sub / "b.png")
    assert _load("set")[2] == 1 and _load(sub)[2] == 1 and _load(server["input"])[2] == 1


@pytest.mark.parametrize("target", ["elsewhere", "custom_nodes"])
def test_reading_a_folder_outside_is_refused(server, target):
    with pytest.raises(owner.NotGranted, match=r"path '.*' .*LLM_ASSIST_ALLOWED_DIRS|custom_nodes"):
        _load(server[target])
    assert LLMAssistLoadImageFolder.IS_CHANGED(str(server[target])).startswith("path")  # no signature of it either


def test_relative_escape_and_symlinks_out_are_refused(server):
    with pytest.raises(owner.NotGranted, match="outside"):
        _load("../../elsewhere")
    (server["input"] / "linked").symlink_to(server["elsewhere"], target_is_directory=True)
    with pytest.raises(owner.NotGranted, match="through a symlink"):
        _load("linked")
    (server["input"] / "set").mkdir()
    (server["input"] / "set" / "x.png").symlink_to(server["elsewhere"] / "a.png")
    with pytest.raises(owner.NotGranted, match="x.png"):  # one image file linking out refuses the folder
        _load("set")


def test_owner_granted_folder_is_readable(server):
    with owner.override(extra_dirs=[server["elsewhere"]]):
        assert _load(server["elsewhere"])[2] == 1
        with pytest.raises(owner.NotGranted, match="custom_nodes"):  # never, even when a parent is granted
            with owner.override(extra_dirs=[server["custom_nodes"].parent]):
                _load(server["custom_nodes"])


def test_captions_beside_images_outside_are_refused_and_nothing_written(server):
    inside, outside = server["input"] / "a.png", server["elsewhere"] / "a.png"
    with pytest.raises(owner.NotGranted, match="image_paths item .*caption file.*outside"):
        _save([inside, outside])
    assert _txt_files(server["input"]) == [] and _txt_files(server["elsewhere"]) == []
    assert _save([inside])["result"][0] == 1 and (server["input"] / "a.txt").read_text() == "cap"


def test_output_folder_outside_is_refused(server):
    with pytest.raises(owner.NotGranted, match="output_folder"):
        _save([server["input"] / "a.png"], folder=str(server["elsewhere"] / "caps"))
    assert not (server["elsewhere"] / "caps").exists()
    assert _save([server["input"] / "a.png"], folder="caps")["result"][0] == 1
    assert (server["output"] / "caps" / "a.txt").is_file()


def test_caption_file_symlinked_out_is_refused(server):
    secret = server["elsewhere"] / "secret.txt"
    secret.write_text("keep me")
    (server["input"] / "a.txt").symlink_to(secret)
    with pytest.raises(ValueError, match="outside"):
        _save([server["input"] / "a.png"])
    assert secret.read_text() == "keep me"


def test_caption_into_custom_nodes_is_refused(server):
    with pytest.raises(owner.NotGranted, match="custom_nodes"):
        _save([server["custom_nodes"] / "a.png"])
    assert _txt_files(server["custom_nodes"]) == []


def test_unrestricted_standalone_keeps_working(server):
    with owner.override(restrict_paths=False):
        assert _load(server["elsewhere"])[2] == 1
        assert _save([server["elsewhere"] / "a.png"])["result"][0] == 1


def test_output_subfolder_symlinked_out_is_refused(server):
    """Captions keep the images' sub-folders under output_folder: a linked sub-folder leading out is refused."""
    for sub in ("set", "other"):
        (server["input"] / sub).mkdir()
        Image.new("RGB", (8, 8)).save(server["input"] / sub / f"{sub}.png")
    (server["output"] / "caps").mkdir()
    (server["output"] / "caps" / "set").symlink_to(server["elsewhere"], target_is_directory=True)
    images = [server["input"] / "set" / "set.png", server["input"] / "other" / "other.png"]
    # refused by the caption-file rule (a symlinked sub-folder) before the owner's grant is even asked
    with pytest.raises(ValueError, match="set.png.*outside.*caps"):
        _save(images, folder="caps")
    assert _txt_files(server["elsewhere"]) == [] and _txt_files(server["output"]) == []
    (server["output"] / "caps" / "set").unlink()
    assert _save(images, folder="caps")["result"][0] == 2
    assert (server["output"] / "caps" / "set" / "set.txt").is_file()
