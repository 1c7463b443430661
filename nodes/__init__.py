"""ComfyUI node classes, one module per stage. Importing this imports nothing heavy."""
from . import _guard, describe, evaluate, generate, io, keywords, model_server, prompt

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
for _module in (describe, io, keywords, prompt, generate, evaluate, model_server):
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
for _cls in NODE_CLASS_MAPPINGS.values():  # inputs checked against INPUT_TYPES before every call
    _guard.guard(_cls)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
