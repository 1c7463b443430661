"""``make-tiny-models DIR``: offline tiny random-weight models laid out like ComfyUI's models/."""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("dir", help="output folder (created; existing files with the same names are replaced)")


def command(args) -> int:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ..core.tiny_models import build_tiny_models

    out = build_tiny_models(Path(args.dir))  # logs its own summary line
    print(out)
    return 0
