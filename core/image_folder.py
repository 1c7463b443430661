"""Image folders in, caption files out.

``list_images`` / ``load_image`` read a folder of images (EXIF orientation applied, any mode
converted to RGB). ``write_caption`` writes ``<image stem>.txt`` beside the image or into an
output folder, atomically (temp file in the same folder, fsync, ``os.replace``), and refuses
any target that would land outside that folder (``..``, symlinks pointing out).
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from . import host
from .constants import CAPTION_MODES, FOLDER_SORTS
from .safe_files import TEMP_SUFFIX, atomic_write_text, check_target_file, os_problem  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
SORTS = FOLDER_SORTS
MODES = CAPTION_MODES
CLI_MODES = {"skip": "skip existing", "overwrite": "overwrite", "append": "append"}


# ------------------------------------------------------------------------- reading
def resolve_folder(path: str | os.PathLike) -> Path:
    """An existing folder: absolute, or relative to the input directory (then the working dir)."""
    text = str(path or "").strip().strip('"')
    if not text:
        raise ValueError("folder path is empty: type the path of a folder of images")
    candidate = Path(os.path.expanduser(text))
    tries = [candidate] if candidate.is_absolute() else [host.input_directory() / candidate, Path.cwd() / candidate]
    try:
        for folder in tries:
            if folder.is_dir():
                return folder.resolve()
        found = any(t.exists() for t in tries)
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise ValueError(f"folder path {text[:80]!r}... ({len(text)} characters) is not usable: {os_problem(exc)}: "
                         "check the path") from None
    if found:
        raise ValueError(f"folder path {text!r} is a file, not a folder: give the folder that holds the images")
    raise ValueError(f"folder {text!r} does not exist (looked in {', '.join(str(t) for t in tries)}): check the path")


def _natural_key(path: Path):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.as_posix())]


def list_images(folder, pattern: str = "*", sort: str = "natural", start: int = 0, limit: int = 0,
                recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` matching ``pattern``, sorted, from ``start`` (0-based), at most
    ``limit`` (0 = all). Raises a clear error when there are none."""
    root = resolve_folder(folder)
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {SORTS}, got {sort!r}")
    if start < 0 or limit < 0:
        raise ValueError(f"start and limit must be >= 0, got start={start}, limit={limit}")
    pattern = (pattern or "*").strip() or "*"
    if Path(pattern).is_absolute() or Path(pattern).drive:
        raise ValueError(f"pattern {pattern!r} is an absolute path: a pattern matches file names inside the folder; "
                         f"put the folder in path and use a pattern such as {Path(pattern).name or '*'!r}")
    try:
        found = root.rglob(pattern) if recursive else root.glob(pattern)
        files = [p for p in found if p.is_file() and p.suffix.lower() in IMAGE_EXTS]
    except (ValueError, NotImplementedError) as exc:
        raise ValueError(f"pattern {pattern!r} is not a usable glob pattern ({exc}): use e.g. *.png or cat_*") from None
    if sort == "name":
        files.sort(key=lambda p: p.as_posix())
    elif sort == "natural":
        files.sort(key=_natural_key)
    else:
        files.sort(key=lambda p: (p.stat().st_mtime, p.as_posix()))
    if not files:
        raise ValueError(
            f"no images matching {pattern!r} in {root}{' (recursive)' if recursive else ''}: "
            f"check the glob pattern; image types read: {', '.join(IMAGE_EXTS)}"
        )
    selected = files[start:start + limit] if limit else files[start:]
    if not selected:
        raise ValueError(f"start={start} is past the last image ({len(files)} found in {root}): lower start")
    return selected


def _float_to_l(im):
    """A mode "F" image as 8-bit grey: 0..1 data (the usual float convention) scaled by 255,
    0..255 data kept, 16-bit-range data scaled by 255/65535, anything larger by its maximum."""
    import numpy as np
    from PIL import Image

    arr = np.nan_to_num(np.asarray(im, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(arr.max()) if arr.size else 0.0
    scale = 255.0 if peak <= 1.0 else 1.0 if peak <= 255.0 else 255.0 / 65535.0 if peak <= 65535.0 else 255.0 / peak
    return Image.fromarray(np.clip(arr * scale, 0, 255).round().astype(np.uint8), "L")


def load_pil(path, max_side: int = 0):
    """An RGB PIL image with its EXIF orientation applied (RGBA, LA, L, P, CMYK, I;16 converted).

    ``max_side`` > 0: downscaled on load so that its longer side is at most ``max_side`` px
    (aspect kept; a JPEG is decoded at a reduced DCT scale first, so a 12 MP photo is never held
    at full size)."""
    from PIL import Image, ImageOps

    max_side = int(max_side or 0)
    if max_side < 0:
        raise ValueError(f"max_side must be >= 0 (0 = full size), got {max_side}")
    try:
        with Image.open(path) as im:
            if max_side and max(im.size) > max_side:
                im.draft(None, (max_side, max_side))  # JPEG: decode at 1/2, 1/4 or 1/8 scale, still >= max_side
            im = ImageOps.exif_transpose(im)
            if im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                im = im.point(lambda v: v * (1 / 256)).convert("L")
            elif im.mode == "F":  # float32 (TIFF): convert("L") would clip 0..1 data to black
                im = _float_to_l(im)
            im = im.convert("RGB")
            if max_side and max(im.size) > max_side:
                im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            return im
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"could not read image {path}: {exc}; remove or re-save the file") from exc


def load_image(path, max_side: int = 0):
    """IMAGE tensor [1,H,W,3] float32 in 0..1 (``max_side``: see ``load_pil``)."""
    from .images import from_pil

    return from_pil(load_pil(path, max_side))


@dataclass(frozen=True)
class ImageFiles:
    """The LLMA_IMAGE_FILES socket: a folder's image files, decoded only when a consumer asks,
    a few at a time (Load Image Folder -> Caption Image), so memory does not grow with the folder.

    Made only by Load Image Folder from files it listed (and the owner's checks allowed): a
    workflow's values cannot put other paths in it."""

    paths: tuple = ()
    max_side: int = 0  # downscale on load (longer side, px); 0 = full size

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int):
        """Image ``index`` as an RGB PIL image (downscaled to ``max_side``)."""
        return load_pil(self.paths[index], self.max_side)

    def batches(self, size: int):
        """PIL images ``size`` at a time, in order; only one batch is alive at once."""
        size = max(1, int(size))
        for start in range(0, len(self.paths), size):
            yield [self.load(i) for i in range(start, min(start + size, len(self.paths)))]


def folder_signature(paths: list[Path]) -> str:
    """Changes when a listed file is added, removed or modified (for IS_CHANGED)."""
    import hashlib

    digest = hashlib.sha256()
    for p in paths:
        st = p.stat()
        digest.update(f"{p}|{st.st_mtime_ns}|{st.st_size}\n".encode())
    return digest.hexdigest()


# ------------------------------------------------------------------------- writing
@dataclass(frozen=True)
class WriteResult:
    path: Path
    status: str  # "written", "overwritten", "appended" or "skipped"


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def output_root(output_dir: str | os.PathLike | None, image_path: str | os.PathLike) -> Path:
    """The folder a caption goes into: ``output_dir`` (relative = under the output directory)
    or, when empty, the image's own folder."""
    text = str(output_dir or "").strip()
    if not text:
        return Path(image_path).resolve().parent
    folder = Path(os.path.expanduser(text))
    if not folder.is_absolute():
        base = host.output_directory().resolve()
        folder = (base / folder).resolve()
        if not _inside(folder, base):
            raise ValueError(
                f"output folder {text!r} points outside the output directory {base}: use a folder inside it "
                "or an absolute path"
            )
    return folder.resolve()


def caption_path(image_path: str | os.PathLike, output_dir: str | os.PathLike | None = None) -> Path:
    """``<output folder or image folder>/<image stem>.txt``; refuses targets outside that folder."""
    image_path = Path(str(image_path).strip())
    if not str(image_path) or not image_path.name:
        raise ValueError(f"image path {str(image_path)!r} is empty: connect the paths output of Load Image Folder")
    root = output_root(output_dir, image_path)
    target = root / f"{image_path.stem}.txt"
    if image_path.stem in ("", ".", "..") or not _inside(target.resolve(), root) or target.resolve().parent != root:
        raise ValueError(
            f"caption file for {image_path} would be written to {target.resolve()}, outside {root} "
            "(a symlink or odd file name): remove the link or rename the image"
        )
    return target


def normalize_mode(mode: str) -> str:
    mode = CLI_MODES.get(mode, mode)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES} (CLI: {list(CLI_MODES)}), got {mode!r}")
    return mode


def read_caption(target: Path) -> str:
    """The text of an existing caption file; a clear error when it is not UTF-8 text."""
    try:
        return target.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"caption file {target} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at position {exc.start}), so a "
            "caption cannot be appended to it without mixing encodings: convert it to UTF-8 (e.g. iconv -f latin1 "
            "-t utf-8) or use mode overwrite") from None


def write_caption(image_path, caption: str, *, output_dir=None, mode: str = "skip existing",
                  prefix: str = "", suffix: str = "", target=None) -> WriteResult:
    """Write one caption file. ``mode``: skip existing / overwrite / append (new line after the
    existing text). ``prefix`` and ``suffix`` are added verbatim around the caption. ``target``:
    the caption file (from ``captioning_folder.caption_targets``); default ``caption_path``."""
    mode = normalize_mode(mode)
    target = Path(target) if target is not None else caption_path(image_path, output_dir)
    text = f"{prefix}{caption}{suffix}"
    exists = target.exists()
    if exists and mode == "skip existing":
        return WriteResult(target, "skipped")
    if exists and mode == "append":
        old = read_caption(target)
        text = f"{old.rstrip(chr(10))}\n{text}" if old.strip() else text
        status = "appended"
    else:
        status = "overwritten" if exists else "written"
    try:
        atomic_write_text(target, text)
    except OSError as exc:
        raise ValueError(f"cannot write caption file {target} ({os_problem(exc)}): check the folder's permissions "
                         "and free space") from exc
    return WriteResult(target, status)


def summarize(results: list[WriteResult], extra: str = "") -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    parts = [f"{n} {s}" for s, n in sorted(counts.items())] or ["nothing to do"]
    folders = sorted({str(r.path.parent) for r in results})
    where = f" in {folders[0]}" if len(folders) == 1 else f" in {len(folders)} folders" if folders else ""
    return f"captions: {', '.join(parts)}{where}{extra}"
