"""Qwen-Image-Edit's Qwen2-VL processor where torchvision is absent.

transformers 5 builds ``Qwen2VLProcessor`` from an image processor, a tokenizer AND a video
processor; every video processor needs torchvision, and the processor checks each part's class
(``ProcessorMixin.__init__``), so ``Qwen2VLProcessor.from_pretrained`` fails without torchvision
even though image editing never reads a video. ComfyUI installs torchvision, so there the saved
processor loads as is; elsewhere (a venv without torchvision) ``override`` loads the same processor
without its video part: the tokenizer plus ``Qwen2VLImageProcessorPil`` (the PIL backend that
transformers itself falls back to for ``Qwen2VLImageProcessor`` without torchvision).
"""
from __future__ import annotations

import functools
import importlib.util
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)
SAVED_CLASS = ["transformers", "Qwen2VLProcessor"]


def torchvision_available() -> bool:
    return importlib.util.find_spec("torchvision") is not None


@functools.lru_cache(maxsize=1)
def image_only_class():
    """``Qwen2VLProcessor`` without the video processor (its ``__init__`` names only images + text)."""
    from transformers import Qwen2VLProcessor

    class Qwen2VLImageOnlyProcessor(Qwen2VLProcessor):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    return Qwen2VLImageOnlyProcessor


def image_only(image_processor, tokenizer):
    return image_only_class()(image_processor=image_processor, tokenizer=tokenizer)


def pil_image_processor_class():
    """Qwen2-VL's image processor on PIL/numpy (transformers 5: ``Qwen2VLImageProcessorPil``; before,
    the slow ``Qwen2VLImageProcessor`` was the PIL one)."""
    try:
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    except ImportError:
        from transformers import Qwen2VLImageProcessor as Qwen2VLImageProcessorPil
    return Qwen2VLImageProcessorPil


def load_image_only(folder: str | Path):
    """The processor saved in ``folder`` (a pipeline's processor/ folder), without its video part."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    return image_only(pil_image_processor_class().from_pretrained(folder), AutoTokenizer.from_pretrained(folder))


def override(source: str) -> dict:
    """``{"processor": ...}`` for ``DiffusionPipeline.from_pretrained(source, ...)`` when ``source`` is a
    local folder whose processor is a Qwen2VLProcessor and torchvision is missing; else ``{}``."""
    index = Path(source) / "model_index.json"
    if torchvision_available() or not index.is_file():
        return {}
    try:
        saved = json.loads(index.read_text()).get("processor")
    except (OSError, ValueError):
        return {}
    if saved != SAVED_CLASS or not (Path(source) / "processor").is_dir():
        return {}
    log.info("torchvision is not installed: loading %s's Qwen2-VL processor without its video processor", source)
    return {"processor": load_image_only(Path(source) / "processor")}
