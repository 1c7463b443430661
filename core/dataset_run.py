"""Caption a dataset with a manifest, locally or on Ray (Ray Data's ``map_batches`` over an actor
pool, one captioner per actor).

The driver (the ``caption`` command) lists the images, leaves out what is already done, and
hands Ray a dataset of paths. Each actor (``CaptionWorker``) loads the captioner once, from the
same picklable ``CaptionJob`` the local engine uses, and captions batch after batch, computing
the statistical keywords in the same pass. The rows stream back to the driver, which writes the
caption files (atomically, skip / overwrite / append as the local engine does) and the manifest
block by block.

Why the driver writes and the workers only compute: Ray retries a task whose worker died, so a
batch may be captioned twice; a result reaches the driver once. Writing there keeps every
caption file and manifest row exactly-once, and lets workers run on hosts that cannot write to
the images' storage (with ``--no-sidecars`` the manifest is then the output).

Without Ray (``engine="local"``) the same driver captions the batches in this process, so
``--manifest`` works with either engine and both give the same rows.

Ray is optional (``pip install 'llm-assist[ray]'``) and imported only here, only when asked for.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from .dataset_job import CaptionJob, caption_batch, load_job_captioner
from .dataset_manifest import Manifest, ManifestRow

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'llm-assist[ray]' (or: pip install 'ray[data]>=2.40')"
ENGINES = ("local", "ray")
MAX_BLOCKS = 2000
RETRIES = 3  # restarts of a dead worker, and retries of the batch it held
FORWARDED_ENV = ("HF_HUB_OFFLINE", "HF_HOME", "TRANSFORMERS_OFFLINE", "LLM_ASSIST_MODELS", "LLM_ASSIST_CACHE_LIMIT_MB",
                 "LLM_ASSIST_SERVER_HOSTS", "LLM_ASSIST_API_KEY_ENV", "LLM_ASSIST_API_KEY_FILE")


class MissingExtra(ValueError):
    """An optional dependency the asked-for feature needs is not installed."""


def require_ray():
    """The ``ray`` module, or an error that says how to install it."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise MissingExtra(f"--engine ray needs Ray, which is not installed: {INSTALL_HINT}") from exc
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the caption command draws one bar for the whole job
    if not log.isEnabledFor(logging.DEBUG):
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    return ray


@dataclass(frozen=True)
class RayOptions:
    address: str = ""  # "" = $RAY_ADDRESS, else start a local Ray
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    batch_size: int = 8

    def __post_init__(self):
        if int(self.workers) < 1:
            raise ValueError(f"--workers must be at least 1, got {self.workers}")
        if int(self.batch_size) < 1:
            raise ValueError(f"--batch-size must be at least 1, got {self.batch_size}")
        if float(self.gpus_per_worker) < 0 or float(self.cpus_per_worker) <= 0:
            raise ValueError(f"--gpus-per-worker must be >= 0 and CPUs per worker > 0, "
                             f"got {self.gpus_per_worker} / {self.cpus_per_worker}")


@dataclass(frozen=True)
class JobResult:
    total: int
    already: int
    captioned: int
    seconds: float
    statuses: tuple[tuple[str, int], ...] = ()

    def summary(self) -> str:
        written = ", ".join(f"{n} {s}" for s, n in self.statuses) or f"{self.captioned} captioned"
        rate = self.captioned / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.total} images: {written}, {self.already} skipped (already done), "
                f"{self.seconds:.1f} s ({rate:.2f} images/s)")


class CaptionWorker:
    """A Ray Data actor: loads the job's captioner once, then captions batch after batch."""

    def __init__(self, job: CaptionJob):
        self.job = job
        self.captioner = load_job_captioner(job)

    def __call__(self, batch: dict) -> dict:
        paths = [str(p) for p in batch["path"]]
        result = caption_batch(self.captioner, paths, self.job)
        share = result.seconds / max(len(paths), 1)
        return {
            "path": paths,
            "caption": list(result.captions),
            "keywords": [json.dumps([[t, s] for t, s in k]) for k in result.keywords],
            "seconds": [share] * len(paths),
        }


def _runtime_env(job: CaptionJob) -> dict:
    env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    if job.models_root:
        env["LLM_ASSIST_MODELS"] = job.models_root
    if job.server:  # the driver's user granted this host (the CLI user is the owner): so may the workers
        from urllib.parse import urlsplit

        hosts = [h for h in env.get("LLM_ASSIST_SERVER_HOSTS", "").split(",") if h.strip()]
        env["LLM_ASSIST_SERVER_HOSTS"] = ",".join(dict.fromkeys([*hosts, urlsplit(job.server).hostname or ""]))
    return {"env_vars": env} if env else {}


def _connect(ray, options: RayOptions, job: CaptionJob) -> bool:
    """Join ``--address`` / $RAY_ADDRESS, or start a local Ray. True when we started it."""
    if ray.is_initialized():
        return False
    address = options.address or os.environ.get("RAY_ADDRESS", "")
    kwargs = {"runtime_env": _runtime_env(job), "include_dashboard": False, "log_to_driver": False,
              "configure_logging": False}
    if address:
        log.info("joining the Ray cluster at %s", address)
        ray.init(address=address, **kwargs)
        return True
    cpus = max(os.cpu_count() or 1, math.ceil(options.workers * options.cpus_per_worker))
    log.info("starting a local Ray (%d CPUs)", cpus)
    ray.init(num_cpus=cpus, **kwargs)
    return True


def _rows(batch: dict, job: CaptionJob) -> list[ManifestRow]:
    return [
        ManifestRow(path=str(p), caption=str(c), keywords=tuple((t, float(s)) for t, s in json.loads(k)),
                    model=job.label(), seed=int(job.settings.seed), seconds=float(sec))
        for p, c, k, sec in zip(batch["path"], batch["caption"], batch["keywords"], batch["seconds"])
    ]


@dataclass
class _Writer:
    """Writes what the workers return: caption files and manifest blocks, each exactly once."""

    job: CaptionJob
    manifest: Manifest | None
    sidecars: bool
    mode: str
    prefix: str
    suffix: str

    targets: dict[str, Path]

    def __post_init__(self):
        self.statuses: dict[str, int] = {}

    def write(self, rows: list[ManifestRow]) -> None:
        from .image_folder import write_caption

        if self.sidecars:
            for row in rows:
                status = write_caption(row.path, row.caption, mode=self.mode, prefix=self.prefix, suffix=self.suffix,
                                       target=self.targets[row.path]).status
                self.statuses[status] = self.statuses.get(status, 0) + 1
        if self.manifest is not None:
            self.manifest.append(rows)


def pending(paths: list[Path], *, manifest: Manifest | None, sidecars: bool, mode: str,
            targets: dict[str, Path]) -> list[Path]:
    """The images still to caption. With a manifest, those not in it (the manifest is the job's
    record; a caption file that exists is kept in skip mode, and its row is written again).
    Without one, in skip mode, those without a caption file; otherwise all."""
    from .image_folder import normalize_mode

    if manifest is not None:
        done = manifest.done()
        return [p for p in paths if str(p) not in done]
    if sidecars and normalize_mode(mode) == "skip existing":
        return [p for p in paths if not targets[str(p)].exists()]
    return list(paths)


def run(paths: list[Path], job: CaptionJob, options: RayOptions = RayOptions(), *, engine: str = "ray",
        manifest: Manifest | None = None, sidecars: bool = True, mode: str = "skip existing",
        output_dir: str | None = None, prefix: str = "", suffix: str = "",
        on_progress: Callable[[int, int], None] | None = None) -> JobResult:
    """Caption ``paths`` on Ray (or in this process: ``engine="local"``); see the module docstring.

    Ctrl-C stops the job and releases the workers; everything written so far is whole, and a
    rerun resumes."""
    if engine not in ENGINES:
        raise ValueError(f"--engine must be one of {ENGINES}, got {engine!r}")
    if not sidecars and manifest is None:
        raise ValueError("--no-sidecars needs --manifest: otherwise the captions would go nowhere")
    from .captioning_folder import caption_targets, check_targets
    from .safe_files import clear_stale_temps

    start = time.perf_counter()
    paths = [Path(p) for p in paths]
    targets: dict[str, Path] = {}
    if sidecars:  # one caption file per image, each writable: checked before any work
        targets = {str(p): t for p, t in zip(paths, caption_targets(paths, output_dir))}
        check_targets(list(targets.values()), mode)
        clear_stale_temps(targets.values())
    todo = pending(paths, manifest=manifest, sidecars=sidecars, mode=mode, targets=targets)
    already = len(paths) - len(todo)
    writer = _Writer(job, manifest, sidecars, mode, prefix, suffix, targets)
    if not todo:
        return JobResult(len(paths), already, 0, time.perf_counter() - start)
    job = replace(job, settings=replace(job.settings, batch_size=int(options.batch_size)))
    done = 0
    batches = _local_batches(todo, job) if engine == "local" else None
    ray = started = None
    if batches is None:
        ray = require_ray()
        started = _connect(ray, options, job)
    try:
        if batches is None:
            batches = _ray_batches(ray, todo, job, options)
        for batch in batches:
            rows = _rows(batch, job)
            writer.write(rows)
            done += len(rows)
            if on_progress is not None:
                on_progress(done, len(todo))
    finally:
        if started:
            ray.shutdown()
    return JobResult(len(paths), already, done, time.perf_counter() - start, tuple(sorted(writer.statuses.items())))


def _local_batches(todo: list[Path], job: CaptionJob):
    worker = CaptionWorker(job)
    size = int(job.settings.batch_size)
    for start in range(0, len(todo), size):
        yield worker({"path": [str(p) for p in todo[start:start + size]]})


def _ray_batches(ray, todo: list[Path], job: CaptionJob, options: RayOptions):
    blocks = max(1, min(MAX_BLOCKS, math.ceil(len(todo) / options.batch_size)))
    dataset = ray.data.from_items([{"path": str(p)} for p in todo], override_num_blocks=blocks)
    common = dict(batch_size=int(options.batch_size), batch_format="numpy",
                  compute=ray.data.ActorPoolStrategy(size=int(options.workers)),
                  num_cpus=float(options.cpus_per_worker), num_gpus=float(options.gpus_per_worker) or None)
    common = dict(common, fn_constructor_kwargs={"job": job})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Ray 2.5x-2.63 deprecate these arguments without a replacement yet
        try:
            captioned = dataset.map_batches(CaptionWorker, max_restarts=RETRIES, max_task_retries=RETRIES, **common)
        except TypeError:  # a Ray without them: its default retries a dead worker's batch until it succeeds
            captioned = dataset.map_batches(CaptionWorker, **common)
    yield from captioned.iter_batches(batch_size=None, batch_format="numpy")
