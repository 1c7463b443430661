"""What a dataset job captions: a folder, a glob, or a manifest of paths.

``list_source`` turns the SOURCE argument of ``caption`` into an ordered list of image files:

- a folder: its images (``--glob`` / ``--recursive`` apply), in natural order;
- a glob such as ``photos/**/*.jpg`` (absolute or relative, ``**`` recurses): the matching images;
- a manifest: a ``.jsonl`` file with one JSON object per line, or a ``.parquet`` file (or a folder
  of Parquet parts), each row holding the image path in a ``path`` column (``image`` and
  ``file_name`` are accepted too). Relative paths are relative to the manifest's folder.

Duplicates are dropped (the first occurrence keeps its place), so an image is captioned once.
"""
from __future__ import annotations

import glob
import json
import os
from pathlib import Path

from . import image_folder

PATH_COLUMNS = ("path", "image", "file_name")
MANIFEST_SUFFIXES = (".jsonl", ".parquet")


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _dedupe(paths) -> list[Path]:
    seen: set[str] = set()
    out: list[Path] = []
    for p in paths:
        key = os.path.normpath(str(p))
        if key not in seen:
            seen.add(key)
            out.append(Path(key))
    return out


def _row_path(row: dict, where: str) -> str:
    for column in PATH_COLUMNS:
        value = row.get(column)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise ValueError(f"{where} has no image path: each row needs a {' / '.join(PATH_COLUMNS)} column")


def _jsonl_paths(manifest: Path) -> list[str]:
    out = []
    with open(manifest, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{manifest} line {number} is not JSON ({exc.msg}): fix or remove the line") from exc
            if not isinstance(row, dict):
                raise ValueError(f"{manifest} line {number} is {type(row).__name__}, not an object with a path")
            out.append(_row_path(row, f"{manifest} line {number}"))
    return out


def _parquet_paths(manifest: Path) -> list[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow comes with the ray extra
        raise ValueError(f"{manifest} is Parquet, which needs pyarrow: pip install pyarrow (or the ray extra)") from exc
    table = pq.read_table(manifest)
    column = next((c for c in PATH_COLUMNS if c in table.column_names), None)
    if column is None:
        raise ValueError(f"{manifest} has no path column: name one of {', '.join(PATH_COLUMNS)}; "
                         f"it has {', '.join(table.column_names) or 'no columns'}")
    return [str(v) for v in table.column(column).to_pylist() if v]


def _manifest_paths(manifest: Path) -> list[Path]:
    raw = _jsonl_paths(manifest) if manifest.suffix.lower() == ".jsonl" else _parquet_paths(manifest)
    base = manifest.parent if manifest.is_file() else manifest
    paths = [Path(os.path.expanduser(p)) for p in raw]
    return [p if p.is_absolute() else base / p for p in paths]


def _is_parquet_folder(path: Path) -> bool:
    return path.is_dir() and path.suffix.lower() == ".parquet"


def list_source(source: str | os.PathLike, pattern: str = "*", recursive: bool = False) -> list[Path]:
    """The images SOURCE names (see the module docstring), in a stable order, without duplicates."""
    text = str(source or "").strip()
    if not text:
        raise ValueError("SOURCE is empty: give a folder, a glob such as 'photos/*.jpg', or a .jsonl/.parquet manifest")
    path = Path(os.path.expanduser(text))
    try:
        path.exists()  # ENOENT is False; a name too long for the file system raises
    except OSError as exc:
        from .safe_files import os_problem

        raise ValueError(f"SOURCE {text[:80]!r}... ({len(text)} characters) is not a usable path: "
                         f"{os_problem(exc)}") from None
    if path.suffix.lower() in MANIFEST_SUFFIXES and (path.is_file() or _is_parquet_folder(path)):
        paths = _dedupe(_manifest_paths(path))
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise ValueError(f"{len(missing)} image(s) listed in {path} do not exist, e.g. {missing[0]}: "
                             "fix the manifest or restore the files")
        if not paths:
            raise ValueError(f"manifest {path} lists no images")
        return paths
    if path.is_dir():
        return image_folder.list_images(path, pattern, "natural", recursive=recursive)
    if _is_glob(text):
        found = [Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True)]
        files = [p for p in found if p.is_file() and p.suffix.lower() in image_folder.IMAGE_EXTS]
        if not files:
            raise ValueError(f"no images match {text!r}: check the pattern (quote it so the shell does not expand it); "
                             f"image types read: {', '.join(image_folder.IMAGE_EXTS)}")
        files.sort(key=lambda p: [int(t) if t.isdigit() else t.lower() for t in _split_digits(p.as_posix())])
        return _dedupe(files)
    if path.exists():
        raise ValueError(f"SOURCE {text!r} is a file but not a manifest: give a folder, a glob, or a "
                         f"{' / '.join(MANIFEST_SUFFIXES)} manifest with a path column")
    raise ValueError(f"SOURCE {text!r} does not exist: give a folder, a glob, or a .jsonl/.parquet manifest")


def _split_digits(text: str) -> list[str]:
    import re

    return re.split(r"(\d+)", text)
