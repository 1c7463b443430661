"""One description of a dataset captioning job, shared by the local and the Ray engine.

``CaptionJob`` is a small frozen, picklable record: which captioner (a model folder, or a model
server), how to caption, how to write. A Ray worker rebuilds the captioner from it with
``load_job_captioner`` (our loaders and model cache, the same options as the node), so nothing
live crosses a process boundary. ``caption_batch`` is the per-batch work both engines do:
caption the images and compute the statistical keywords in the same pass.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .captioning import CaptionSettings


@dataclass(frozen=True)
class CaptionJob:
    model: str = ""  # a folder name under models/LLM, or an absolute model folder
    server: str = ""  # an OpenAI-compatible base URL instead of a local model
    server_model: str = ""
    server_options: Any = None  # core.model_server.ServerOptions (a frozen dataclass), None = defaults
    models_root: str = ""
    device: str = "auto"
    dtype: str = "auto"
    quantization: str = "none"
    allow_download: bool = False
    settings: CaptionSettings = field(default_factory=CaptionSettings)
    keywords_top_k: int = 8

    def label(self) -> str:
        return f"{self.server_model} @ {self.server}" if self.server else self.model


def load_job_captioner(job: CaptionJob):
    """The job's captioner, loaded as the caption CLI and the Load Captioner node load it."""
    from . import captioning, host, owner
    from .hf_loading import LoadOptions, check_safe_folder

    if job.server:
        from . import model_server

        return model_server.connect_captioner(job.server, job.server_model, job.server_options)
    if job.models_root:
        host.set_models_root(job.models_root)
    with owner.override(allow_download=bool(job.allow_download)):  # the CLI user is the owner
        options = LoadOptions(device=job.device, dtype=job.dtype, quantization=job.quantization,
                              allow_download=job.allow_download, keep_loaded=True)
    model_path = Path(os.path.expanduser(job.model))
    if model_path.is_absolute():
        if not model_path.is_dir():
            raise ValueError(f"--model {job.model!r} is not a folder: give a model folder or a name under models/LLM")
        check_safe_folder(model_path)
        return captioning.load_captioner_from_source(str(model_path.resolve()), options)
    return captioning.load_captioner(job.model, options)


@dataclass(frozen=True)
class BatchResult:
    captions: tuple[str, ...]
    keywords: tuple[tuple[tuple[str, float], ...], ...]
    seconds: float  # wall time of the whole batch


def caption_batch(captioner, paths: list[str | os.PathLike], job: CaptionJob) -> BatchResult:
    """Caption one batch of image files and extract their keywords (statistical, cheap)."""
    from .captioning import caption_images
    from .image_folder import load_pil
    from .keywords.statistical import extract

    start = time.perf_counter()
    images = [load_pil(p) for p in paths]
    captions = caption_images(captioner, images, job.settings)
    keywords = tuple(tuple(extract(c, top_k=job.keywords_top_k)) for c in captions)
    return BatchResult(tuple(captions), keywords, time.perf_counter() - start)
