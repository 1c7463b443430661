"""Describe stage: Load Captioner, Caption Image, Load Image Encoder, Encode Image."""
from __future__ import annotations

from ..core.constants import CAPTION_PRESETS as PRESETS
from ._common import category, first, hf_loader_inputs, load_hf_model

_SEED_MAX = 0xFFFFFFFFFFFFFFFF


class LLMAssistLoadCaptioner:
    DESCRIPTION = (
        "Load an image captioner from models/LLM: BLIP, BLIP-2, GIT, chat VLMs (SmolVLM, Qwen2-VL, LLaVA ...) "
        "or a VisionEncoderDecoder captioner (ViT-GPT2). Cached: loading the same model again is free."
    )
    CATEGORY = category("loaders")
    FUNCTION = "load"
    RETURN_TYPES = ("LLMA_CAPTIONER",)
    RETURN_NAMES = ("captioner",)
    OUTPUT_TOOLTIPS = ("The loaded captioner: connect it to Caption Image.",)

    @classmethod
    def INPUT_TYPES(cls):
        return hf_loader_inputs("LLM", "A captioner folder in models/LLM (or an extra path for 'LLM').")

    def load(self, model, repo_id="", **widgets):
        from ..core.captioning import load_captioner

        return (load_hf_model(load_captioner, "LLM", model, repo_id, widgets),)


class LLMAssistCaptionImage:
    DESCRIPTION = (
        "Write one caption per image (a batch of N, or a list of images from Load Image Folder, gives N captions; "
        "Load Image Folder's files output on image_files reads batch_size images at a time, for folders of any size). "
        "Chat VLMs follow the instruction; BLIP/GIT take it as a caption prefix; ViT-GPT2 ignores it."
    )
    CATEGORY = category("describe")
    FUNCTION = "caption"
    INPUT_IS_LIST = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("caption",)
    OUTPUT_IS_LIST = (True,)
    OUTPUT_TOOLTIPS = ("One caption per image, in order (a list: downstream nodes run once per caption).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "captioner": ("LLMA_CAPTIONER", {"tooltip": "From Load Captioner."}),
                "instruction": (PRESETS, {"default": "short", "tooltip": (
                    "What to ask for. Chat VLMs: short = one sentence, detailed = subject/setting/colours/lighting/style, "
                    "tags = comma-separated tags, custom = your text. BLIP: short = conditional caption from 'a picture of', "
                    "detailed/tags = unconditional caption, custom = your text as the caption's start. BLIP-2: short = plain "
                    "caption, others as 'Question: ... Answer:'. GIT: custom text as a prefix, else plain. "
                    "ViT-GPT2 (VisionEncoderDecoder) ignores the instruction.")}),
                "custom_instruction": ("STRING", {"default": "", "multiline": True, "tooltip": "Used when instruction is 'custom' (a prefix for BLIP/GIT; ignored by ViT-GPT2)."}),
                "max_new_tokens": ("INT", {"default": 40, "min": 1, "max": 1024, "tooltip": "Longest caption, in tokens."}),
                "num_beams": ("INT", {"default": 1, "min": 1, "max": 16, "tooltip": "Beam search width; 1 = greedy (or sampling). More beams: slower, often more fluent."}),
                "do_sample": ("BOOLEAN", {"default": False, "tooltip": "Sample instead of taking the most likely token: varied captions per seed."}),
                "temperature": ("FLOAT", {"default": 0.7, "min": 0.01, "max": 2.0, "step": 0.01, "tooltip": "Sampling temperature (only with do_sample): higher = more varied."}),
                "top_p": ("FLOAT", {"default": 0.9, "min": 0.01, "max": 1.0, "step": 0.01, "tooltip": "Nucleus sampling mass (only with do_sample)."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": _SEED_MAX, "control_after_generate": True, "tooltip": "Same seed and settings give the same captions."}),
                "batch_size": ("INT", {"default": 4, "min": 1, "max": 64, "tooltip": "Images per generate call: larger is faster until memory runs out."}),
            },
            "optional": {
                "image": ("IMAGE", {"tooltip": "Image batch or a list of images (mixed sizes allowed). Connect this or image_files."}),
                "image_files": ("LLMA_IMAGE_FILES", {"tooltip": (
                    "The files output of Load Image Folder (instead of image): images are read batch_size at a time "
                    "and dropped after their batch, so any number of photos fits in memory.")}),
            },
        }

    def caption(self, captioner, image=None, instruction="short", custom_instruction="", max_new_tokens=40, num_beams=1,
                do_sample=False, temperature=0.7, top_p=0.9, seed=0, batch_size=4, image_files=None):
        from ..core import captioning

        cap = first(captioner)
        settings = captioning.CaptionSettings(
            preset=first(instruction), custom_instruction=first(custom_instruction) or "",
            max_new_tokens=int(first(max_new_tokens)), num_beams=int(first(num_beams)),
            do_sample=bool(first(do_sample)), temperature=float(first(temperature)),
            top_p=float(first(top_p)), seed=int(first(seed)), batch_size=int(first(batch_size)))
        images = [i for i in (image if isinstance(image, list) else [image]) if i is not None]
        files = [f for f in (image_files if isinstance(image_files, list) else [image_files]) if f is not None]
        if bool(images) == bool(files):
            raise ValueError(
                f"connect exactly one of image and image_files, got {'both' if images else 'neither'}: image for "
                "IMAGE batches or lists, image_files for Load Image Folder's files output (bounded memory)")
        try:
            if files:
                from ..core.captioning_folder import caption_image_files

                captions = [c for f in files for c in caption_image_files(cap, f, settings)]
            else:
                captions = captioning.caption_images(cap, images, settings)
        finally:
            captioning.release(cap)
        return (captions,)


class LLMAssistLoadImageEncoder:
    DESCRIPTION = "Load a CLIP / SigLIP image encoder from models/clip_vision (image and text towers) for features and scores."
    CATEGORY = category("loaders")
    FUNCTION = "load"
    RETURN_TYPES = ("LLMA_IMAGE_ENCODER",)
    RETURN_NAMES = ("image_encoder",)
    OUTPUT_TOOLTIPS = ("The loaded encoder: connect it to Encode Image, keyword ranking or CLIP Score.",)

    @classmethod
    def INPUT_TYPES(cls):
        return hf_loader_inputs("clip_vision", "A CLIP or SigLIP folder (with both towers) in models/clip_vision.")

    def load(self, model, repo_id="", **widgets):
        from ..core.image_encoder import load_image_encoder

        return (load_hf_model(load_image_encoder, "clip_vision", model, repo_id, widgets),)


class LLMAssistEncodeImage:
    DESCRIPTION = "Image features F(x): one L2-normalised embedding row per image of the batch."
    CATEGORY = category("describe")
    FUNCTION = "encode"
    RETURN_TYPES = ("LLMA_FEATURES",)
    RETURN_NAMES = ("features",)
    OUTPUT_TOOLTIPS = ("Features [B, D], one L2-normalised row per image (for diversity and keyword ranking).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image_encoder": ("LLMA_IMAGE_ENCODER", {"tooltip": "From Load Image Encoder."}),
                "image": ("IMAGE", {"tooltip": "The images to encode."}),
            },
        }

    def encode(self, image_encoder, image):
        from ..core.sockets import Features

        if not hasattr(image_encoder, "encode_images"):
            raise ValueError(f"image_encoder must come from Load Image Encoder, got {type(image_encoder).__name__}")
        return (Features(image_encoder.encode_images(image), image_encoder.name),)


NODE_CLASS_MAPPINGS = {
    "LLMAssistLoadCaptioner": LLMAssistLoadCaptioner,
    "LLMAssistCaptionImage": LLMAssistCaptionImage,
    "LLMAssistLoadImageEncoder": LLMAssistLoadImageEncoder,
    "LLMAssistEncodeImage": LLMAssistEncodeImage,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LLMAssistLoadCaptioner": "Load Captioner",
    "LLMAssistCaptionImage": "Caption Image",
    "LLMAssistLoadImageEncoder": "Load Image Encoder",
    "LLMAssistEncodeImage": "Encode Image",
}
