"""The dataset job's manifest: one row per captioned image, written block by block.

A row holds ``path``, ``caption``, ``keywords`` (``[[text, score], ...]``), ``model``, ``seed``
and ``seconds`` (the captioning time of the image's batch, shared out per image).

Two formats, chosen by the file name:

- ``NAME.jsonl``: one JSON object per line. Each block is appended with a single write and
  fsynced. A process killed in the middle of a write can leave a torn last line; the next run
  cuts it off before appending (``Manifest.done`` repairs the file), so every line is a whole row.
- ``NAME.parquet``: a folder of Parquet parts (``part-00000.parquet``, ...), each written to a
  temporary name and renamed, so a part is either whole or absent. pandas and pyarrow read the
  folder as one table (``pandas.read_parquet(NAME.parquet)``).

A rerun reads the paths already in the manifest and skips them, so a row is written once.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FORMATS = (".jsonl", ".parquet")


@dataclass(frozen=True)
class ManifestRow:
    path: str
    caption: str
    keywords: tuple  # ((text, score), ...)
    model: str
    seed: int
    seconds: float

    def as_json(self) -> dict:
        row = asdict(self)
        row["keywords"] = [[t, s] for t, s in self.keywords]
        return row


class Manifest:
    """A manifest file (JSONL) or folder (Parquet) that grows by whole blocks."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(os.path.expanduser(str(path)))
        self.format = self.path.suffix.lower()
        if self.format not in FORMATS:
            raise ValueError(f"--manifest {str(path)!r} must end in .jsonl or .parquet (the format is taken from the name)")
        if self.format == ".jsonl" and self.path.is_dir():
            raise ValueError(f"--manifest {self.path} is a folder: a .jsonl manifest is a file")
        if self.format == ".parquet" and self.path.is_file():
            raise ValueError(f"--manifest {self.path} is a file: a .parquet manifest is a folder of parts "
                             "(written part by part so a killed run loses nothing); pick a new name")
        self._parts = 0

    # ----------------------------------------------------------------- reading
    def done(self) -> set[str]:
        """Paths already in the manifest (and, for JSONL, a torn last line cut off)."""
        if self.format == ".jsonl":
            return self._jsonl_done()
        return self._parquet_done()

    def _jsonl_done(self) -> set[str]:
        if not self.path.exists():
            return set()
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            log.warning("manifest %s ends in a torn line (a run was killed mid-write): cutting %d bytes",
                        self.path, len(data) - end)
            with open(self.path, "r+b") as handle:
                handle.truncate(end)
                handle.flush()
                os.fsync(handle.fileno())
        paths = set()
        for line in data[:end].decode("utf-8").splitlines():
            if line.strip():
                paths.add(json.loads(line)["path"])
        return paths

    def _parquet_done(self) -> set[str]:
        if not self.path.is_dir():
            return set()
        import pyarrow.parquet as pq

        parts = sorted(self.path.glob("part-*.parquet"))
        self._parts = len(parts)
        paths: set[str] = set()
        for part in parts:
            paths.update(pq.read_table(part, columns=["path"]).column("path").to_pylist())
        return paths

    def rows(self) -> list[dict]:
        """Every row, in the order written."""
        if self.format == ".jsonl":
            if not self.path.exists():
                return []
            return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not self.path.is_dir():
            return []
        import pyarrow.parquet as pq

        rows: list[dict] = []
        for part in sorted(self.path.glob("part-*.parquet")):
            table = pq.read_table(part)
            for row in table.to_pylist():
                row["keywords"] = [[k["text"], k["score"]] for k in row["keywords"]]
                rows.append(row)
        return rows

    # ----------------------------------------------------------------- writing
    def append(self, rows: list[ManifestRow]) -> None:
        """Add one block of rows, whole or not at all."""
        if not rows:
            return
        if self.format == ".jsonl":
            self._append_jsonl(rows)
        else:
            self._append_parquet(rows)

    def _append_jsonl(self, rows: list[ManifestRow]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        block = "".join(json.dumps(r.as_json(), ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            written = 0
            while written < len(block):
                written += os.write(fd, block[written:])
            os.fsync(fd)
        finally:
            os.close(fd)

    def _append_parquet(self, rows: list[ManifestRow]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path.mkdir(parents=True, exist_ok=True)
        keyword_type = pa.list_(pa.struct([("text", pa.string()), ("score", pa.float64())]))
        table = pa.table({
            "path": pa.array([r.path for r in rows], pa.string()),
            "caption": pa.array([r.caption for r in rows], pa.string()),
            "keywords": pa.array([[{"text": t, "score": float(s)} for t, s in r.keywords] for r in rows], keyword_type),
            "model": pa.array([r.model for r in rows], pa.string()),
            "seed": pa.array([int(r.seed) for r in rows], pa.int64()),
            "seconds": pa.array([float(r.seconds) for r in rows], pa.float64()),
        })
        while (self.path / f"part-{self._parts:05d}.parquet").exists():
            self._parts += 1
        target = self.path / f"part-{self._parts:05d}.parquet"
        fd, tmp = tempfile.mkstemp(prefix=".part-", suffix=".tmp-llma", dir=self.path)
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._parts += 1
