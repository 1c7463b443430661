"""Image folders, caption files (atomic, never outside the chosen folder), resumable folder captioning."""
import os
import time

import pytest
import torch
from PIL import Image

from llm_assist.core import host, image_folder
from llm_assist.core.captioning import CaptionSettings, load_captioner
from llm_assist.core.captioning_folder import caption_files
from llm_assist.nodes.io import LLMAssistLoadImageFolder, LLMAssistSaveCaptions


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _folder(tmp_path, n=5):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(n):
        Image.new("RGB", (40 + 4 * i, 32), (20 * i, 90, 160)).save(folder / f"img{i * 5}.png")
    return folder


def _temp_files(folder):
    return [p for p in folder.rglob("*") if p.name.endswith(image_folder.TEMP_SUFFIX)]


def test_list_images_sort_start_limit_glob_recursive(tmp_path):
    folder = _folder(tmp_path)
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub").mkdir()
    Image.new("RGB", (8, 8)).save(folder / "sub" / "deep.jpg")
    natural = [p.name for p in image_folder.list_images(folder)]
    assert natural == ["img0.png", "img5.png", "img10.png", "img15.png", "img20.png"]
    assert [p.name for p in image_folder.list_images(folder, sort="name")][:2] == ["img0.png", "img10.png"]
    os.utime(folder / "img20.png", (1, 1))
    assert image_folder.list_images(folder, sort="mtime")[0].name == "img20.png"
    assert [p.name for p in image_folder.list_images(folder, start=1, limit=2)] == ["img5.png", "img10.png"]
    assert [p.name for p in image_folder.list_images(folder, pattern="img1*")] == ["img10.png", "img15.png"]
    assert "deep.jpg" in [p.name for p in image_folder.list_images(folder, recursive=True)]


def test_bad_paths_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        image_folder.list_images(tmp_path / "missing")
    with pytest.raises(ValueError, match="empty"):
        image_folder.list_images("")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        image_folder.list_images(tmp_path / "empty")
    folder = _folder(tmp_path, 2)
    with pytest.raises(ValueError, match="past the last image"):
        image_folder.list_images(folder, start=5)
    with pytest.raises(ValueError, match="is a file"):
        image_folder.list_images(folder / "img0.png")


def test_exif_orientation_and_modes(tmp_path):
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    im.save(tmp_path / "rot.jpg", exif=exif)
    assert tuple(image_folder.load_image(tmp_path / "rot.jpg").shape) == (1, 40, 20, 3)
    for mode in ("RGBA", "L", "P", "LA", "I;16"):
        Image.new(mode, (12, 10)).save(tmp_path / f"m_{mode.replace(';', '')}.png")
        tensor = image_folder.load_image(tmp_path / f"m_{mode.replace(';', '')}.png")
        assert tuple(tensor.shape) == (1, 10, 12, 3) and tensor.dtype == torch.float32
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="could not read image"):
        image_folder.load_image(tmp_path / "broken.png")


def test_load_image_folder_node(tmp_path):
    folder = _folder(tmp_path, 3)
    images, paths, count, files = LLMAssistLoadImageFolder().load(path=str(folder), pattern="*", sort="natural",
                                                                   start=0, limit=0, recursive=False)
    assert count == 3 and len(images) == 3 and len(paths) == 3 and len(files) == 3
    assert [tuple(i.shape) for i in images] == [(1, 32, 40, 3), (1, 32, 44, 3), (1, 32, 48, 3)]
    assert paths[1] == str(folder / "img5.png")
    sig = LLMAssistLoadImageFolder.IS_CHANGED(str(folder))
    Image.new("RGB", (8, 8)).save(folder / "img99.png")
    assert LLMAssistLoadImageFolder.IS_CHANGED(str(folder)) != sig


def test_write_caption_modes_prefix_suffix_atomic(tmp_path):
    image = tmp_path / "a.png"
    first = image_folder.write_caption(image, "a cat", prefix="sks, ", suffix=".")
    assert first.status == "written" and (tmp_path / "a.txt").read_text() == "sks, a cat."
    assert image_folder.write_caption(image, "a dog").status == "skipped"
    assert (tmp_path / "a.txt").read_text() == "sks, a cat."
    assert image_folder.write_caption(image, "a dog", mode="append").status == "appended"
    assert (tmp_path / "a.txt").read_text() == "sks, a cat.\na dog"
    assert image_folder.write_caption(image, "a fox", mode="overwrite").status == "overwritten"
    assert (tmp_path / "a.txt").read_text() == "a fox"
    out = image_folder.write_caption(image, "x", output_dir=tmp_path / "out")
    assert out.path == (tmp_path / "out" / "a.txt").resolve()
    with pytest.raises(ValueError, match="mode"):
        image_folder.write_caption(image, "x", mode="merge")
    assert not _temp_files(tmp_path)


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "b.txt"
    target.write_text("old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(image_folder.os, "replace", boom)
    with pytest.raises(ValueError, match="cannot write caption file .*disk full"):
        image_folder.write_caption(tmp_path / "b.png", "new", mode="overwrite")
    assert target.read_text() == "old" and not _temp_files(tmp_path)


def test_refuses_paths_that_escape(tmp_path, monkeypatch):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    images = tmp_path / "images"
    images.mkdir()
    (images / "evil.txt").symlink_to(outside)
    with pytest.raises(ValueError, match="outside"):
        image_folder.write_caption(images / "evil.png", "pwned", mode="overwrite")
    assert outside.read_text() == "keep me"
    monkeypatch.setattr(host, "_output_dir", tmp_path / "output")
    with pytest.raises(ValueError, match="outside the output directory"):
        image_folder.write_caption(images / "ok.png", "x", output_dir="../elsewhere")
    node = LLMAssistSaveCaptions()
    with pytest.raises(ValueError, match="outside"):  # nothing is written when one target is refused
        node.save(["fine", "pwned"], [str(images / "fine.png"), str(images / "evil.png")], ["overwrite"], [""], [""], [""])
    assert not (images / "fine.txt").exists() and outside.read_text() == "keep me"


def test_save_captions_node(tmp_path, monkeypatch):
    monkeypatch.setattr(host, "_output_dir", tmp_path / "output")
    paths = [str(tmp_path / "x1.png"), str(tmp_path / "x2.png")]
    out = LLMAssistSaveCaptions().save(["one", "two"], paths, ["skip existing"], ["caps"], ["p "], [""])
    assert out["result"][0] == 2 and out["ui"]["text"] == [out["result"][1]]
    assert (tmp_path / "output" / "caps" / "x2.txt").read_text() == "p two"
    again = LLMAssistSaveCaptions().save(["one", "two"], paths, ["skip existing"], ["caps"], [""], [""])
    assert again["result"][0] == 0 and "2 skipped" in again["result"][1]
    with pytest.raises(ValueError, match="image_paths has 2"):
        LLMAssistSaveCaptions().save(["one"], paths)


def test_folder_captioning_resumes_after_interrupt(models_root, tmp_path):
    folder = _folder(tmp_path, 5)
    (folder / "img0.txt").write_text("hand written")  # must survive: skip mode never overwrites
    captioner = load_captioner("tiny-blip")
    settings = CaptionSettings(max_new_tokens=4, batch_size=2)
    paths = image_folder.list_images(folder)

    def stop_after_first_batch(done, todo):
        if done >= 2:
            host.request_interrupt()

    with pytest.raises(host.Interrupted):  # "killed" after k = 2 captioned images
        caption_files(captioner, paths, settings, on_progress=stop_after_first_batch)
    txt = sorted(p.name for p in folder.glob("*.txt"))
    assert txt == ["img0.txt", "img10.txt", "img5.txt"] and not _temp_files(folder)

    def stop_mid_generation(current, total):
        if current >= 2:
            host.request_interrupt()

    host.add_progress_listener(stop_mid_generation)
    try:
        with pytest.raises(host.Interrupted):  # cancelled inside generate: nothing partial written
            caption_files(captioner, paths, settings)
    finally:
        host.remove_progress_listener(stop_mid_generation)
    assert len(list(folder.glob("*.txt"))) == 3 and not _temp_files(folder)

    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.txt")}
    time.sleep(0.01)
    result = caption_files(captioner, paths, settings)
    assert result.already == 3 and result.count("written") == 2
    assert (folder / "img0.txt").read_text() == "hand written"
    assert all((folder / n).stat().st_mtime_ns == t for n, t in before.items())
    assert len(list(folder.glob("*.txt"))) == 5 and not _temp_files(folder)
    overwrite = caption_files(captioner, paths, settings, mode="overwrite")
    assert overwrite.count("overwritten") == 5 and (folder / "img0.txt").read_text() != "hand written"


def test_caption_cli(models_root, tmp_path, capsys):
    from llm_assist.cli import main

    folder = _folder(tmp_path, 3)
    args = ["caption", str(folder), "--model", "tiny-vit-gpt2", "--models", str(models_root),
            "--batch-size", "2", "--max-new-tokens", "4"]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "3 written" in out.out and "3/3 images" in out.err
    assert len(list(folder.glob("*.txt"))) == 3
    assert main(args) == 0 and "3 skipped" in capsys.readouterr().out
    absolute = ["caption", str(folder), "--model", str(models_root / "LLM" / "tiny-blip"), "--mode", "append",
                "--quantization", "int8-dynamic", "--device", "cpu", "--max-new-tokens", "4"]
    assert main(absolute) == 0 and "3 appended" in capsys.readouterr().out
    assert main(["caption", str(folder), "--model", "nope", "--models", str(models_root)]) == 1


# ---------------------------------------------------------------- bounded memory for any folder size
def _photo(path, size, orientation=None):
    import numpy as np

    rng = np.random.default_rng(len(str(path)))
    im = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    im.save(path, exif=exif)
    return path


@pytest.mark.parametrize("size,orientation,max_side,expected", [
    ((3000, 2000), None, 500, (500, 333)),
    ((3000, 2000), 6, 500, (333, 500)),      # EXIF "rotate 90": portrait after the transpose
    ((1200, 300), None, 512, (512, 128)),
    ((300, 200), None, 512, (300, 200)),     # never upscaled
    ((3000, 2000), None, 0, (3000, 2000)),   # 0 = full size
])
@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_load_downscales_on_load(tmp_path, size, orientation, max_side, expected, suffix):
    path = _photo(tmp_path / f"p{suffix}", size, orientation)
    im = image_folder.load_pil(path, max_side)
    assert im.mode == "RGB" and im.size == expected
    tensor = image_folder.load_image(path, max_side)
    assert tuple(tensor.shape) == (1, expected[1], expected[0], 3) and tensor.dtype == torch.float32
    with pytest.raises(ValueError, match="max_side"):
        image_folder.load_pil(path, -1)


def test_load_image_folder_files_output_decodes_nothing(tmp_path):
    folder = _folder(tmp_path, 5)
    node = LLMAssistLoadImageFolder()
    images, paths, count, files = node.load(path=str(folder), max_side=16, load_images=False)
    assert images == [] and count == 5 and [str(p) for p in files.paths] == paths
    assert isinstance(files, image_folder.ImageFiles) and files.max_side == 16
    assert [len(b) for b in files.batches(2)] == [2, 2, 1]
    assert all(max(im.size) <= 16 for b in files.batches(2) for im in b)
    decoded, *_ = node.load(path=str(folder), max_side=16, load_images=True)
    assert [max(i.shape[1:3]) for i in decoded] == [16] * 5
    # load_images off while a node reads the images output: a clear error, not a silent empty list
    prompt = {"2": {"class_type": "LLMAssistLoadImageFolder", "inputs": {}},
              "4": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
              "5": {"class_type": "LLMAssistSaveCaptions", "inputs": {"image_paths": ["2", 1]}}}
    with pytest.raises(ValueError, match="load_images is off but node.s. 4 read the images"):
        node.load(path=str(folder), load_images=False, prompt=prompt, unique_id="2")
    prompt.pop("4")
    assert node.load(path=str(folder), load_images=False, prompt=prompt, unique_id="2")[0] == []


def test_caption_image_files_holds_one_batch_at_a_time(models_root, tmp_path):
    """Caption Image on Load Image Folder's files: the same captions as on the decoded images,
    and never more than batch_size decoded images alive at once (whatever the folder's size)."""
    import gc
    import weakref

    from llm_assist.core.captioning import caption_images
    from llm_assist.core.captioning_folder import caption_image_files
    from llm_assist.nodes.describe import LLMAssistCaptionImage

    folder = _folder(tmp_path, 7)
    paths = image_folder.list_images(folder)
    refs, peak = [], [0]

    class Counted(image_folder.ImageFiles):  # the real loader, with a count of the live images
        def load(self, index):
            gc.collect()
            im = super().load(index)
            refs.append(weakref.ref(im))
            peak[0] = max(peak[0], sum(1 for r in refs if r() is not None))
            return im

    captioner = load_captioner("tiny-blip")
    settings = CaptionSettings(max_new_tokens=4, batch_size=3)
    got = caption_image_files(captioner, Counted(tuple(paths)), settings)
    assert got == caption_images(captioner, [image_folder.load_pil(p) for p in paths], settings)
    assert len(got) == 7 and peak[0] <= 3, peak[0]
    files = image_folder.ImageFiles(tuple(paths))
    (node_captions,) = LLMAssistCaptionImage().caption(
        captioner=[captioner], image_files=[files], instruction=["short"], custom_instruction=[""], max_new_tokens=[4],
        num_beams=[1], do_sample=[False], temperature=[0.7], top_p=[0.9], seed=[0], batch_size=[3])
    assert node_captions == got
    with pytest.raises(ValueError, match="exactly one of image and image_files, got neither"):
        LLMAssistCaptionImage().caption(captioner=[captioner], instruction=["short"], custom_instruction=[""],
                                        max_new_tokens=[4], num_beams=[1], do_sample=[False], temperature=[0.7],
                                        top_p=[0.9], seed=[0], batch_size=[3])


def test_api_prompt_written_before_max_side_and_load_images_still_runs(tmp_path):
    """max_side / load_images are optional inputs: an API prompt without them validates and runs as before."""
    from llm_assist.runner.execute import execute_prompt

    folder = _folder(tmp_path, 3)
    prompt = {"1": {"class_type": "LLMAssistLoadImageFolder",
                    "inputs": {"path": str(folder), "pattern": "*", "sort": "natural", "start": 0, "limit": 0,
                               "recursive": False}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 2]}}}
    result = execute_prompt(prompt, output_dir=tmp_path / "out", cache=False)
    assert result.outputs["2"]["text"] == ["3"]
