"""Constants that core, nodes, the runner and tools share: one place, importing nothing.

ComfyUI imports the node modules at start-up, so anything they need at import time lives here
rather than in a module that pulls in torch.
"""
from __future__ import annotations

# weight files the loaders never unpickle (safetensors only)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# the component folders of a diffusers pipeline whose weights the loaders check
DIFFUSERS_SUBFOLDERS = ("unet", "vae", "text_encoder", "text_encoder_2", "text_encoder_3", "transformer")

# widget options of the describe / io / evaluate nodes (the core functions check against the same lists)
CAPTION_PRESETS = ["short", "detailed", "tags", "custom"]
FOLDER_SORTS = ["name", "natural", "mtime"]
CAPTION_MODES = ["skip existing", "overwrite", "append"]
COMPARE_REGIONS = ["whole image", "inside mask", "outside mask"]

# the loader widgets' options (Load Captioner / Language Model / Image Encoder / Pipeline, the CLI)
DEVICES = ["auto", "cuda", "cpu", "mps"]
DTYPES = ["auto", "fp32", "fp16", "bf16"]
QUANTIZATIONS = ["none", "int8-dynamic (CPU)", "bnb-8bit (CUDA)", "bnb-4bit (CUDA)"]
ATTENTIONS = ["auto", "sdpa", "eager", "flash_attention_2"]
