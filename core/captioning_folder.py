"""Caption a folder of images into ``<stem>.txt`` files, resumably.

The sidecar rule (``caption_targets``, the one place it lives; the Save Captions node, the
``caption`` CLI and the dataset engine use it):

* a caption file is ``<image stem>.txt`` (``photo.png`` -> ``photo.txt``), the name training
  tools such as kohya-ss sd-scripts, OneTrainer and ai-toolkit look for beside an image;
* beside the image, or with an output folder, in that folder at the image's sub-folder path
  relative to the folder all the images share (``--recursive``: ``a/x.png`` and ``b/x.png``
  become ``OUT/a/x.txt`` and ``OUT/b/x.txt``; one folder of images stays flat);
* two images that would share one caption file (``x.png`` beside ``x.jpg``) stop the run with
  an error naming them *before anything is written*: a training tool pairs both images with
  ``x.txt``, so no name we could pick for the second caption would be read for it. Rename one
  image, or narrow the pattern (``*.png``).

Each batch's captions are written (atomically) right after the batch, so stopping at any point
(Cancel, Ctrl-C, a kill) leaves only complete caption files; in "skip existing" mode a rerun
skips the images that already have one and carries on where it stopped.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from . import image_folder
from .captioning import CaptionSettings, Captioner, caption_images
from .safe_files import clear_stale_temps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FolderResult:
    total: int  # images listed
    already: int  # skipped because their caption file existed
    results: tuple = ()  # image_folder.WriteResult per captioned image
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    def summary(self) -> str:
        written = {s: self.count(s) for s in ("written", "overwritten", "appended") if self.count(s)}
        parts = ", ".join(f"{n} {s}" for s, n in written.items()) or "0 written"
        return (f"{self.total} images: {parts}, {self.already} skipped (caption file exists), "
                f"{self.seconds:.1f} s")


def _common_folder(paths: Sequence[Path]) -> Path:
    parents = {p.resolve().parent for p in paths}
    return Path(os.path.commonpath([str(p) for p in parents])) if parents else Path(".")


def caption_targets(image_paths: Sequence, output_dir=None) -> list[Path]:
    """The caption file of each image (the module docstring's rule), in order.

    Raises ValueError, naming the images, when two of them would share a caption file, or when a
    target is refused (outside its folder, an odd name).
    """
    paths = [Path(str(p).strip()) for p in image_paths]
    if not str(output_dir or "").strip():
        targets = [image_folder.caption_path(p, None) for p in paths]
    else:
        common = _common_folder(paths)
        base = image_folder.output_root(output_dir, common)
        targets = [image_folder.caption_path(p, base / p.resolve().parent.relative_to(common)) for p in paths]
        for image, target in zip(paths, targets):  # a symlinked sub-folder must not lead out of the folder
            if base.resolve() not in target.resolve().parents:
                raise ValueError(f"caption file for {image} would be written to {target.resolve()}, outside the "
                                 f"output folder {base} (a symlinked sub-folder): remove the link")
    by_target: dict[Path, list[Path]] = {}
    for image, target in zip(paths, targets):
        by_target.setdefault(target.resolve(), []).append(image)
    clashes = [(t, imgs) for t, imgs in by_target.items() if len(imgs) > 1]
    if clashes:
        shown = "; ".join(f"{' and '.join(i.name if i.parent == imgs[0].parent else str(i) for i in imgs)} -> {t}"
                          for t, imgs in clashes[:5])
        more = f" (and {len(clashes) - 5} more)" if len(clashes) > 5 else ""
        raise ValueError(
            f"{sum(len(i) for _, i in clashes)} images would share {len(clashes)} caption file(s): {shown}{more}. "
            "Nothing was written: training tools pair an image with <stem>.txt, so each image needs its own stem; "
            "rename one of each pair, or narrow the pattern (e.g. *.png)")
    return targets


def check_targets(targets: Sequence[Path], mode: str) -> None:
    """Before any work: every target is a regular file or absent, its folder writable, and in
    append mode an existing caption is UTF-8 text. Raises ValueError naming the first problem."""
    from .safe_files import check_output_folder, check_target_file

    mode = image_folder.normalize_mode(mode)
    for folder in dict.fromkeys(t.parent for t in targets):
        check_output_folder(folder, "caption folder")
    for target in targets:
        check_target_file(target, "caption file")
        if mode == "append" and target.exists():
            image_folder.read_caption(target)


def caption_files(captioner: Captioner, paths: list[Path], settings: CaptionSettings, *,
                  mode: str = "skip existing", output_dir=None, prefix: str = "", suffix: str = "",
                  on_progress: Callable[[int, int], None] | None = None) -> FolderResult:
    """Caption ``paths`` batch by batch, writing each batch's files before the next batch.

    ``on_progress(done, todo)`` is called after each batch. Raises the host's interrupt
    exception (after writing the finished batches) when the user cancels.
    """
    mode = image_folder.normalize_mode(mode)
    start_time = time.perf_counter()
    todo = [Path(p) for p in paths]
    targets = dict(zip(todo, caption_targets(todo, output_dir)))  # refuses clashes before any work
    check_targets(list(targets.values()), mode)
    clear_stale_temps(targets.values())
    already = 0
    if mode == "skip existing":
        kept = [p for p in todo if not targets[p].exists()]
        already = len(todo) - len(kept)
        todo = kept
    if already:
        log.info("%d of %d images already have captions: skipped", already, len(paths))
    results: list = []
    batch = int(settings.batch_size)
    for start in range(0, len(todo), batch):
        chunk = todo[start:start + batch]
        images = [image_folder.load_pil(p) for p in chunk]
        captions = caption_images(captioner, images, settings)
        for path, caption in zip(chunk, captions):
            results.append(image_folder.write_caption(path, caption, mode=mode, prefix=prefix, suffix=suffix,
                                                      target=targets[path]))
        if on_progress is not None:
            on_progress(start + len(chunk), len(todo))
    return FolderResult(len(paths), already, tuple(results), time.perf_counter() - start_time)


# ------------------------------------------------------------------------- re-run when files change
class WrittenFiles:
    """What each Save Captions node left on disk, so ComfyUI re-runs it when those files change.

    ComfyUI serves an output node from its cache while ``IS_CHANGED`` returns what it returned
    for the previous queue. ``fingerprint(key)`` returns that same value while every caption
    file the node wrote last time is as the node left it (same inode, size and mtime), and a new
    value as soon as one was deleted or changed; ``record`` stores the state after a run. A
    fresh key (first run) gets a fixed value. At most ``limit`` nodes are remembered.
    """

    def __init__(self, limit: int = 256):
        import threading
        from collections import OrderedDict

        self.limit = limit
        self._lock = threading.Lock()
        self._states: OrderedDict = OrderedDict()  # key -> (targets, states)
        self._last: dict = {}  # key -> value returned for the previous queue

    @staticmethod
    def state(targets: Sequence[Path]) -> tuple:
        out = []
        for target in targets:
            try:
                st = os.stat(target)
                out.append((str(target), st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                out.append((str(target), None))
        return tuple(out)

    def record(self, key, targets: Sequence[Path]) -> None:
        targets = tuple(Path(t) for t in targets)
        snapshot = self.state(targets)
        with self._lock:
            self._states[str(key)] = (targets, snapshot)
            self._states.move_to_end(str(key))
            while len(self._states) > self.limit:
                old, _ = self._states.popitem(last=False)
                self._last.pop(old, None)

    def fingerprint(self, key) -> str:
        import hashlib

        key = str(key)
        with self._lock:
            entry = self._states.get(key)
            if entry is None or self.state(entry[0]) == entry[1]:
                return self._last.get(key, "as written")
            value = hashlib.sha256(repr(self.state(entry[0])).encode()).hexdigest()
            self._last[key] = value
            return value


WRITTEN = WrittenFiles()


def caption_image_files(captioner, files: image_folder.ImageFiles, settings: CaptionSettings) -> list[str]:
    """One caption per file of ``files`` (Load Image Folder's LLMA_IMAGE_FILES), in order.

    Only ``settings.batch_size`` images are decoded at a time (downscaled to ``files.max_side``)
    and dropped after their batch, so memory stays the same for 10 or 10,000 images. The
    captions equal ``caption_images`` on the same images: batches are the same and each batch
    is seeded the same way."""
    from . import host

    captions: list[str] = []
    for chunk in files.batches(settings.batch_size):
        host.check_interrupt()
        captions.extend(caption_images(captioner, chunk, settings))
        del chunk  # before the next batch is decoded: one batch alive, not two
    return captions
