"""``run WORKFLOW.json``: adapter to the headless runner's own argument parser (runner/cli.py)."""
from __future__ import annotations


def add_parser(sub, name: str, help_text: str) -> None:
    from ..runner.cli import add_run_parser

    add_run_parser(sub)


def command(args) -> int:
    from ..runner.cli import run_command

    return run_command(args)
