"""The ``run`` sub-command of ``python -m llm_assist``.

    python -m llm_assist run WORKFLOW.json [--models DIR] [--output DIR] [--input DIR]
        [--set NODE_ID.INPUT=VALUE ...] [--report FILE] [--server URL] [--timeout S]

Exit codes: 0 success, 2 the workflow, ``--output`` or ``--report`` is invalid (nothing was run or
written), 1 a node or the server failed, 130 interrupted (with ``--server`` the prompt is taken
off the server: dequeued, or interrupted if it runs; the same after ``--timeout``).

``--report`` writes regular files only: a symlink is followed (the link stays), a folder, device
node or FIFO is refused before the workflow runs.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def add_run_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``run`` sub-command to an argparse ``subparsers`` object; returns its parser."""
    parser = subparsers.add_parser(
        "run", help="run a ComfyUI workflow (UI or API format) headlessly, or on a ComfyUI server",
        description="Run a workflow in this process with the pack's nodes and stand-ins for the "
                    "core nodes LoadImage, SaveImage, PreviewImage, PreviewAny and the primitives; "
                    "with --server, submit it to a running ComfyUI instead.")
    parser.add_argument("workflow", help="workflow JSON: the editor's Save (UI format) or Export (API)")
    parser.add_argument("--models", metavar="DIR", help="models folder laid out like ComfyUI's "
                        "models/ (default: $LLM_ASSIST_MODELS or ./models)")
    parser.add_argument("--output", metavar="DIR", default="output",
                        help="where SaveImage writes (default: ./output)")
    parser.add_argument("--input", metavar="DIR", help="where LoadImage reads (default: ./input)")
    parser.add_argument("--set", dest="sets", metavar="NODE_ID.INPUT=VALUE", action="append",
                        default=[], help="set a widget value before running, e.g. --set 3.seed=7 "
                        "(parsed by the input's type; repeatable)")
    parser.add_argument("--report", metavar="FILE", help="write a JSON report {prompt_id, outputs, "
                        "files, seconds}")
    parser.add_argument("--server", metavar="URL", help="run on this ComfyUI server instead, e.g. "
                        "http://127.0.0.1:8188")
    parser.add_argument("--timeout", type=float, default=600.0, metavar="S",
                        help="--server: seconds to wait for the prompt to finish (default 600)")
    parser.add_argument("--no-cache", action="store_true", help="re-execute every node")
    parser.add_argument("--allow-download", action="store_true",
                        help="grant the workflow's loaders 'allow download' (here you are the server owner; "
                             "same as LLM_ASSIST_ALLOW_DOWNLOAD=1); with --server the server's owner decides")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="grant the workflow's loaders 'trust remote code' (same as "
                             "LLM_ASSIST_TRUST_REMOTE_CODE=1): only for workflows and models you trust")
    parser.set_defaults(func=run_command)
    return parser


def check_report_path(path) -> Path:
    """Where ``--report`` will be written (symlinks resolved), checked before anything runs: a
    regular file or nothing, in a writable folder; a device node, a folder, a FIFO is refused."""
    from ..core.safe_files import check_target_file  # noqa: PLC0415

    return check_target_file(path, "--report")


def write_report(path, result) -> Path:
    """Write the JSON report atomically (temp file beside the real target, then rename); a
    symlink stays a symlink and its target is rewritten; an existing file keeps its mode."""
    from ..core.safe_files import atomic_write_text  # noqa: PLC0415

    report = {"prompt_id": result.prompt_id, "outputs": result.outputs,
              "files": [str(f) for f in result.files], "seconds": round(result.seconds, 4)}
    return atomic_write_text(check_report_path(path), json.dumps(report, indent=2, default=str))


def _summary(result) -> None:
    print(f"ran prompt {result.prompt_id} in {result.seconds:.2f} s "
          f"({len(result.executed)} nodes executed)")
    for node_id, ui in result.outputs.items():
        for text in (ui.get("text") or []) if isinstance(ui, dict) else []:
            print(f"node {node_id}: {text}")
    for path in result.files:
        print(f"wrote {path}")


def run_command(args) -> int:
    """Run the ``run`` sub-command from parsed ``args``; returns the exit code."""
    from ..core import host  # noqa: PLC0415
    from .execute import NodeExecutionError, run_workflow  # noqa: PLC0415
    from .server import ServerError, run_on_server  # noqa: PLC0415
    from .workflow import WorkflowError  # noqa: PLC0415

    from ..core.safe_files import check_output_folder  # noqa: PLC0415

    try:  # the places results go are checked before anything runs
        check_output_folder(args.output, "--output")
        if args.report:
            check_report_path(args.report)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.models:
        host.set_models_root(args.models)
    if getattr(args, "input", None):
        host.set_input_directory(args.input)
    host.set_output_directory(args.output)
    try:
        if args.server:
            result = run_on_server(args.workflow, args.server, sets=args.sets,
                                   output_dir=args.output, timeout=args.timeout)
        else:
            from ..core import owner  # noqa: PLC0415

            grants = {k: True for k in ("allow_download", "trust_remote_code") if getattr(args, k, False)}
            with owner.override(**grants):
                result = run_workflow(args.workflow, sets=args.sets,
                                      cache=not getattr(args, "no_cache", False))
    except WorkflowError as exc:
        print(f"error: workflow {args.workflow} is invalid, nothing was run:", file=sys.stderr)
        for message in exc.messages:
            print(f"  {message}", file=sys.stderr)
        return 2
    except (NodeExecutionError, ServerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except host.interrupt_exception_types() + (KeyboardInterrupt,):
        print("error: interrupted", file=sys.stderr)
        return 130
    _summary(result)
    if args.report:
        write_report(args.report, result)
        print(f"report {args.report}")
    return 0


def main(argv=None) -> int:
    """Standalone entry (``python -m llm_assist.runner.cli run ...``) for when __main__ is absent."""
    parser = argparse.ArgumentParser(prog="llm_assist")
    add_run_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
