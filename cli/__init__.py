"""The CLI contract (see DESIGN.md): make-tiny-models, run, keywords, caption.

Each sub-command lives in its own module and is imported only when used, so ``keywords``
never pays for importing diffusers.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# module, function adding the parser, function running it
_COMMANDS = {
    "make-tiny-models": ("cli.tiny_models", "Build offline tiny random-weight models laid out like ComfyUI's models/."),
    "run": ("cli.run", "Execute a workflow (API or UI format) headless, or submit it to a ComfyUI server."),
    "keywords": ("cli.keywords", "Extract keywords: captions on stdin, one JSON list of [phrase, score] per line on stdout."),
    "caption": ("cli.caption", "Caption every image of a folder, glob or manifest, writing <image>.txt beside each (resumable; --engine ray scales out)."),
    "demo": ("cli.demo", "Run an example workflow headless: real models when present, else the tiny offline models."),
}


def _load(command: str):
    module_name, _ = _COMMANDS[command]
    return importlib.import_module(f"..{module_name}", __name__)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m llm_assist", description="LLM Assist command line")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in _COMMANDS.items():
        if only is None or name != only:
            sub.add_parser(name, help=help_text, add_help=False)
            continue
        module = _load(name)
        module.add_parser(sub, name, help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    command = next((a for a in argv if a in _COMMANDS), None)
    parser = build_parser(only=command)
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(_load(args.command).command(args) or 0)
    except KeyboardInterrupt:
        logging.getLogger(__name__).error("interrupted")
        return 130
    except (ValueError, FileNotFoundError) as exc:
        logging.getLogger(__name__).error("%s", exc)
        return 1
    except OSError as exc:  # any other file-system refusal: a message, not a traceback
        name = str(exc.filename or "")
        shown = name if len(name) <= 120 else f"{name[:100]}... ({len(name)} characters)"
        logging.getLogger(__name__).error("%s: %s", exc.strerror or exc, shown)
        return 1
