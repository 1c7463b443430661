"""Caption files are never lost: one file per image or an error before writing (issue 15 §3, §5).

The sidecar rule lives in core.captioning_folder.caption_targets; these tests generate folders
of image names (equal stems, sub-folders) and check that every image gets its own caption file
or nothing is written at all; file modes follow the umask / are kept; Save Captions re-runs when
its files are deleted (IS_CHANGED); bad targets are clear errors found before any work.
"""
import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_assist.core import captioning_folder, host, image_folder
from llm_assist.core.captioning_folder import caption_targets, check_targets
from llm_assist.nodes.io import LLMAssistSaveCaptions

STEMS = st.sampled_from(["x", "y", "img1", "photo.v2", "a b"])
EXTS = st.sampled_from([".png", ".jpg", ".JPG", ".webp", ".tiff"])
SUBS = st.sampled_from(["", "a", "b", "a/deep"])
IMAGES = st.lists(st.tuples(SUBS, STEMS, EXTS), min_size=1, max_size=8, unique=True)


def _make(root: Path, items) -> list[Path]:
    paths = []
    for sub, stem, ext in items:
        path = root / sub / f"{stem}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not decoded here")
        paths.append(path)
    return paths


def _txt(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.txt"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=IMAGES, use_output=st.booleans(), mode=st.sampled_from(["skip existing", "overwrite", "append"]))
def test_every_image_gets_its_own_caption_or_nothing_is_written(tmp_path_factory, items, use_output, mode):
    root = tmp_path_factory.mktemp("imgs")
    out = tmp_path_factory.mktemp("out") if use_output else None
    paths = _make(root, items)
    captions = [f"caption of {p.relative_to(root)}" for p in paths]
    keys = {(sub, stem) for sub, stem, _ in items}
    node = LLMAssistSaveCaptions()
    if len(keys) < len(items):  # two images share a stem in one folder: refused, nothing written
        with pytest.raises(ValueError, match="would share .* Nothing was written"):
            node.save(captions, [str(p) for p in paths], [mode], [str(out or "")], [""], [""])
        assert _txt(root) == [] and (out is None or _txt(out) == [])
        return
    result = node.save(captions, [str(p) for p in paths], [mode], [str(out or "")], [""], [""])
    assert result["result"][0] == len(paths)
    targets = caption_targets(paths, out)
    common = Path(os.path.commonpath([str(p.parent) for p in paths]))  # the folder the images share
    assert len(set(targets)) == len(paths)
    for path, caption, target in zip(paths, captions, targets):
        assert target.read_text(encoding="utf-8") == caption  # each image's own caption, nothing mixed
        assert target.name == f"{path.stem}.txt"  # the name training tools look for
        expected_dir = path.parent if out is None else out / path.parent.relative_to(common)
        assert target.parent.resolve() == expected_dir.resolve()


def test_png_beside_jpg_stops_before_writing(tmp_path, models_root, caplog):
    from llm_assist.cli import main
    from PIL import Image

    for name in ("x.png", "x.jpg", "y.png"):
        Image.new("RGB", (32, 32), (10, 90, 200)).save(tmp_path / name)
    for mode in ("skip", "overwrite", "append"):
        code = main(["caption", str(tmp_path), "--model", "tiny-vit-gpt2", "--models", str(models_root),
                     "--max-new-tokens", "3", "--mode", mode])
        assert code == 1 and _txt(tmp_path) == []
    assert "x.jpg and x.png" in caplog.text


def test_recursive_output_keeps_subfolders(tmp_path, models_root, capsys):
    from llm_assist.cli import main
    from PIL import Image

    for sub in ("cats", "dogs"):
        (tmp_path / "data" / sub).mkdir(parents=True)
        Image.new("RGB", (32, 32), (10, 90, 200)).save(tmp_path / "data" / sub / "001.png")
    out = tmp_path / "captions"
    code = main(["caption", str(tmp_path / "data"), "--model", "tiny-vit-gpt2", "--models", str(models_root),
                 "--max-new-tokens", "3", "--recursive", "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.relative_to(out).as_posix() for p in _txt(out)) == ["cats/001.txt", "dogs/001.txt"]


def test_file_modes_follow_umask_and_are_kept(tmp_path):
    image = tmp_path / "a.png"
    previous = os.umask(0o022)
    try:
        image_folder.write_caption(image, "new")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
        os.umask(0o077)
        image_folder.write_caption(tmp_path / "b.png", "new")
        assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600
        os.umask(0o022)
        (tmp_path / "a.txt").chmod(0o640)
        image_folder.write_caption(image, "again", mode="overwrite")
        image_folder.write_caption(image, "more", mode="append")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
        assert (tmp_path / "a.txt").read_text() == "again\nmore"
    finally:
        os.umask(previous)


def test_save_captions_errors_are_messages(tmp_path, monkeypatch):
    monkeypatch.setattr(host, "_output_dir", tmp_path / "output")
    node = LLMAssistSaveCaptions()
    image = tmp_path / "x.png"
    (tmp_path / "x.txt").mkdir()  # IsADirectoryError before
    with pytest.raises(ValueError, match="is a folder: only a regular file"):
        node.save(["c"], [str(image)], ["overwrite"], [""], [""], [""])
    (tmp_path / "afile").write_text("")  # FileExistsError before: output folder is a file
    with pytest.raises(ValueError, match="is a file, not a folder"):
        node.save(["c"], [str(tmp_path / "y.png")], ["overwrite"], [str(tmp_path / "afile")], [""], [""])
    with pytest.raises(ValueError, match="cannot be created: .* is a file"):  # NotADirectoryError before
        node.save(["c"], [str(tmp_path / "y.png")], ["overwrite"], [str(tmp_path / "afile" / "sub")], [""], [""])
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))  # UnicodeDecodeError before
    with pytest.raises(ValueError, match="not UTF-8 text .*iconv"):
        node.save(["c"], [str(tmp_path / "latin.png")], ["append"], [""], [""], [""])
    assert (tmp_path / "latin.txt").read_bytes() == "caf\xe9".encode("latin-1")
    long_name = "a" * 5000
    with pytest.raises(ValueError, match="too long"):
        node.save(["c"], [str(tmp_path / long_name / "x.png")], ["overwrite"], [""], [""], [""])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_folder_is_found_before_captioning(tmp_path, models_root, caplog):
    from llm_assist.cli import main
    from PIL import Image

    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
    tmp_path.chmod(0o555)
    try:
        code = main(["caption", str(tmp_path), "--model", "no-such-model", "--models", str(models_root)])
    finally:
        tmp_path.chmod(0o755)
    assert code == 1 and "not writable" in caplog.text  # before the model is even looked up


def test_unwritable_folder_check_without_permissions(tmp_path, monkeypatch):
    """The same check when the tests run as root (where chmod does not stop writes)."""
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(ValueError, match="not writable"):
        check_targets([tmp_path / "a.txt"], "overwrite")


def test_caption_cli_output_that_is_a_file(tmp_path, models_root, caplog):
    from llm_assist.cli import main
    from PIL import Image

    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
    (tmp_path / "out.txt").write_text("x")
    code = main(["caption", str(tmp_path), "--model", "tiny-vit-gpt2", "--models", str(models_root),
                 "--output", str(tmp_path / "out.txt")])
    assert code == 1 and "is a file, not a folder" in caplog.text


@pytest.mark.parametrize("pattern", ["/etc/*.png", str(Path("/tmp") / "*.jpg")])
def test_absolute_glob_pattern_is_a_message(tmp_path, pattern):
    with pytest.raises(ValueError, match="absolute path"):
        image_folder.list_images(tmp_path, pattern)


def test_long_folder_path_is_a_message():
    with pytest.raises(ValueError, match="too long"):
        image_folder.list_images("/" + "d" * 5000)


def _caption_prompt(folder: Path, mode="skip existing") -> dict:
    return {
        "1": {"class_type": "LLMAssistLoadImageFolder",
              "inputs": {"path": str(folder), "pattern": "*", "sort": "natural", "start": 0, "limit": 0,
                         "recursive": False}},
        "2": {"class_type": "LLMAssistSaveCaptions",
              "inputs": {"captions": "a test caption", "image_paths": ["1", 1], "mode": mode,
                         "output_folder": "", "prefix": "", "suffix": ""}},
    }


@pytest.mark.parametrize("mode", ["skip existing", "overwrite", "append"])
def test_requeue_rewrites_a_deleted_caption_headless(tmp_path, mode):
    """The runner honours IS_CHANGED as ComfyUI does; the real-ComfyUI twin is in test_comfyui_captions."""
    from PIL import Image

    from llm_assist.runner import clear_caches, execute_prompt

    clear_caches()
    Image.new("RGB", (32, 32)).save(tmp_path / "one.png")
    first = execute_prompt(_caption_prompt(tmp_path, mode), output_dir=tmp_path / "out")
    assert "2" in first.executed and (tmp_path / "one.txt").read_text() == "a test caption"
    again = execute_prompt(_caption_prompt(tmp_path, mode), output_dir=tmp_path / "out")
    assert "2" not in again.executed  # unchanged files: served from the cache (no second append)
    assert (tmp_path / "one.txt").read_text() == "a test caption"
    (tmp_path / "one.txt").unlink()
    third = execute_prompt(_caption_prompt(tmp_path, mode), output_dir=tmp_path / "out")
    assert "2" in third.executed and (tmp_path / "one.txt").read_text() == "a test caption"
    fourth = execute_prompt(_caption_prompt(tmp_path, mode), output_dir=tmp_path / "out")
    assert "2" not in fourth.executed and (tmp_path / "one.txt").read_text() == "a test caption"
    json.dumps(fourth.outputs)


def test_written_files_registry_is_bounded(tmp_path):
    reg = captioning_folder.WrittenFiles(limit=3)
    for i in range(10):
        reg.record(i, [tmp_path / f"{i}.txt"])
    assert len(reg._states) == 3 and len(reg._last) <= 3


def test_caption_cli_long_source_path_is_a_message(tmp_path, caplog):
    from llm_assist.cli import main

    assert main(["caption", str(tmp_path / ("d" * 5000)), "--model", "x"]) == 1
    assert "not a usable path" in caplog.text and "too long" in caplog.text


def test_symlinked_subfolder_in_the_output_folder_cannot_lead_out(tmp_path):
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    (tmp_path / "imgs" / "b").mkdir()
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "a").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ValueError, match="outside the output folder"):
        caption_targets([tmp_path / "imgs" / "a" / "x.png", tmp_path / "imgs" / "b" / "y.png"], out)


def test_a_rerun_removes_the_temporary_files_a_killed_run_left(tmp_path, tiny_models):
    """A SIGKILL between writing a caption's temporary file and renaming it leaves the temporary
    file; the next run over the same images removes it (and only files of its own targets)."""
    from PIL import Image

    from llm_assist.cli import main

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        Image.new("RGB", (16, 16), (60 * i, 20, 90)).save(folder / f"p[{i}].png")
    stale = folder / ".p[0].txt.k3j2x.tmp-llma"
    stale.write_text("half a capt")
    unrelated = folder / ".other.txt.k3j2x.tmp-llma"
    unrelated.write_text("not ours")
    assert main(["caption", str(folder), "--model", "tiny-blip", "--models", str(tiny_models),
                 "--max-new-tokens", "4"]) == 0
    assert not stale.exists() and unrelated.exists()
    assert (folder / "p[0].txt").read_text().strip() and (folder / "p[1].txt").read_text().strip()
