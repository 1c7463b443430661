"""Headless workflow runner: run ComfyUI workflows (UI or API format) without ComfyUI.

``python -m llm_assist run WORKFLOW.json`` uses it; tests and other code use the functions below.
Nothing heavy is imported here: torch / PIL load only when a node runs.
"""
from .execute import (
    ExecutionResult,
    NodeExecutionError,
    clear_caches,
    execute_prompt,
    node_class_mappings,
    run_workflow,
)
from .workflow import Workflow, WorkflowError, apply_sets, load_workflow, parse_set, to_api_prompt

__all__ = [
    "ExecutionResult",
    "NodeExecutionError",
    "Workflow",
    "WorkflowError",
    "apply_sets",
    "clear_caches",
    "execute_prompt",
    "load_workflow",
    "node_class_mappings",
    "parse_set",
    "run_workflow",
    "to_api_prompt",
]
