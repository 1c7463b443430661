"""LLM Assist: LLM-assisted image generation as ComfyUI nodes.

ComfyUI imports this folder by path under any folder name; pip installs it as ``llm_assist``.
Importing it imports nothing heavy (no torch, transformers or diffusers) so ComfyUI starts fast.
"""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__version__ = "0.1.0"
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
