"""LLM Assist: LLM-assisted image generation as ComfyUI nodes.

ComfyUI imports this folder by path under any folder name; pip installs it as ``llm_assist``.
Importing it imports nothing heavy (no torch, transformers or diffusers) so ComfyUI starts fast.
"""
if __package__:  # imported as a package: by ComfyUI (under any folder name) or as llm_assist
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:  # pragma: no cover - imported as a bare file, e.g. pytest collecting a clone named comfyui-llm-assist
    # A folder name that is not an identifier cannot be a package to pytest; the tests use the
    # installed ``llm_assist`` instead, so this file only has to import cleanly.
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

__version__ = "0.1.0"
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
