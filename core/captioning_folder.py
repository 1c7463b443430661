"""Caption a folder of images into ``<stem>.txt`` files, resumably.

Each batch's captions are written (atomically) right after the batch, so stopping at any point
(Cancel, Ctrl-C, a kill) leaves only complete caption files; in "skip existing" mode a rerun
skips the images that already have one and carries on where it stopped.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import image_folder
from .captioning import CaptionSettings, Captioner, caption_images

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
    already = 0
    if mode == "skip existing":
        kept = [p for p in todo if not image_folder.caption_path(p, output_dir).exists()]
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
            results.append(image_folder.write_caption(path, caption, output_dir=output_dir, mode=mode,
                                                      prefix=prefix, suffix=suffix))
        if on_progress is not None:
            on_progress(start + len(chunk), len(todo))
    return FolderResult(len(paths), already, tuple(results), time.perf_counter() - start_time)
