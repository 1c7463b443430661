"""Draw stage: Load Diffusion Pipeline, Generate, Enhance, Repair, Edit. Thin adapters over core.diffusion."""
from __future__ import annotations

from ._common import NO_MODELS, category, device_inputs, load_options, loadable_models

MAX_SEED = 0xFFFFFFFFFFFFFFFF
_CKPT_EXTS = (".safetensors",)  # pickles (.ckpt, .pt...) are always refused, so never listed


def _pipeline_choices() -> list[str]:
    from ..core import host

    names: list[str] = []
    for kind, want, exts in (("diffusers", "dirs", (".safetensors",)), ("checkpoints", "files", _CKPT_EXTS)):
        try:
            names += loadable_models(kind, host.list_models(kind, want=want, exts=exts), want)
        except Exception:  # a broken folder must not break /object_info
            pass
    return names or [NO_MODELS]


def _list(kind: str, first: str) -> list[str]:
    from ..core import host

    try:
        names = host.list_models(kind)
        # a tiny VAE's weights are loaded (pickle-only folders are refused); a config folder's are not
        return [first, *(loadable_models(kind, names) if kind == "vae_approx" else names)]
    except Exception:
        return [first]


def _common_inputs(with_size: bool) -> dict:
    req = {
        "pipeline": ("LLMA_PIPELINE", {"tooltip": "The pipeline from Load Diffusion Pipeline."}),
        "seed": ("INT", {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True,
                         "tooltip": "Noise seed. Image i of a batch uses seed + i, so any image can be re-made alone."}),
        "steps": ("INT", {"default": 0, "min": 0, "max": 200, "tooltip": "Denoising steps (img2img/inpaint run steps x strength of them). 0 = the model family's default (SD 1.x 20, SDXL 25, FLUX.1 28, FLUX.2 Klein 4, Qwen-Image 50, Z-Image Turbo 9...)."}),
        "cfg": ("FLOAT", {"default": -1.0, "min": -1.0, "max": 30.0, "step": 0.1, "tooltip": "Guidance scale; -1 = the model family's default. SD/SDXL/SD3/Chroma/Sana: classifier-free guidance, 1 or less switches the negative prompt off (LCM/turbo: 1-2). FLUX.1/FLUX.2: distilled guidance (about 3.5; no negative prompt). Qwen-Image: true CFG scale (about 4). Z-Image: any value above 0 uses the negative prompt."}),
    }
    if with_size:
        req["width"] = ("INT", {"default": 512, "min": 8, "max": 8192, "step": 8, "tooltip": "Image width in pixels: a multiple of 8 (SD 1.x/2.x/SDXL), 16 (SD3, FLUX, Qwen-Image, Z-Image, Chroma) or 32 (Sana)."})
        req["height"] = ("INT", {"default": 512, "min": 8, "max": 8192, "step": 8, "tooltip": "Image height in pixels: a multiple of 8 (SD 1.x/2.x/SDXL), 16 (SD3, FLUX, Qwen-Image, Z-Image, Chroma) or 32 (Sana)."})
    req["batch_size"] = ("INT", {"default": 1, "min": 1, "max": 64, "tooltip": "Images per prompt (per input image for Enhance/Repair/Edit)."})
    opt = {
        "prompt": ("LLMA_PROMPT", {"tooltip": "Prompt spec from Build Prompt; its weighted terms override the text boxes when connected."}),
        "positive": ("STRING", {"multiline": True, "default": "", "tooltip": "Positive prompt; ComfyUI weight syntax (term:1.2), ((term)), [term] is honoured."}),
        "negative": ("STRING", {"multiline": True, "default": "", "tooltip": "Negative prompt (same syntax)."}),
        "clip_skip": ("INT", {"default": 0, "min": 0, "max": 12, "tooltip": "Skip the last N CLIP layers (0 = off; 1 = what some anime models expect)."}),
    }
    return req, opt


def _texts(prompt, positive: str, negative: str) -> tuple[str, str]:
    if prompt is not None:
        return prompt.positive_text(), prompt.negative_text() or (negative or "")
    return positive or "", negative or ""


def _request(prompt, positive, negative, **kw):
    from ..core.diffusion.run import GenerateRequest

    pos, neg = _texts(prompt, positive, negative)
    return GenerateRequest(positive=pos, negative=neg, **kw)


class _DrawNode:
    RETURN_TYPES = ("IMAGE", "INT")
    RETURN_NAMES = ("images", "seed")
    OUTPUT_TOOLTIPS = ("Generated images, float32 [B,H,W,3] in 0..1.", "The seed used (image i used seed + i).")
    FUNCTION = "run"
    CATEGORY = category("generate")


class LLMAssistLoadPipeline:
    DESCRIPTION = ("Load a diffusers pipeline: a folder in models/diffusers of any text-to-image family diffusers "
                   "supports (SD 1.x/2.x, SDXL, SD3/3.5, FLUX.1 with Fill/Kontext, FLUX.2/Klein, Qwen-Image(-Edit), "
                   "Z-Image, Chroma, Sana; 9-channel inpaint, InstructPix2Pix), or a .safetensors single file in "
                   "models/checkpoints (SD 1.x/SDXL whole files; FLUX/SD3/Qwen-Image/Z-Image transformer files "
                   "need the model's diffusers folder in 'config'). Generate/Enhance/Repair/Edit then run the "
                   "family's own pipelines with its defaults. Weights are cached: changing the scheduler or tiny VAE "
                   "never reloads them.")
    RETURN_TYPES = ("LLMA_PIPELINE",)
    RETURN_NAMES = ("pipeline",)
    OUTPUT_TOOLTIPS = ("The loaded pipeline for Generate / Enhance / Repair / Edit.",)
    FUNCTION = "load"
    CATEGORY = category("loaders")

    @classmethod
    def INPUT_TYPES(cls):
        from ..core.diffusion.loading import AUTO_CONFIG
        from ..core.diffusion.schedulers import AS_SAVED, SCHEDULERS

        dev = device_inputs()
        return {
            "required": {
                "model": (_pipeline_choices(), {"tooltip": "A diffusers folder (models/diffusers) or a single-file checkpoint (models/checkpoints, .safetensors only)."}),
                "scheduler": (SCHEDULERS, {"default": AS_SAVED, "tooltip": "Sampler. 'as saved': the model's own (the only choice for flow-matching families: SD3, FLUX, Qwen-Image, Z-Image, Chroma, Sana). LCM / euler trailing (turbo) for few-step SD models."}),
                "device": dev["device"],
                "dtype": dev["dtype"],
            },
            "optional": {
                "config": (_list("diffusers", AUTO_CONFIG), {"default": AUTO_CONFIG, "tooltip": "Single files only: a diffusers folder of the same model to take the configs (SD/SDXL) or the text encoders, VAE and configs (FLUX, SD3, Qwen-Image, Z-Image, Chroma, Sana: their files hold the transformer) from, offline. auto: the HF cache (models/hf-cache/hub if present), SD/SDXL only."}),
                "tiny_vae": (_list("vae_approx", "none"), {"default": "none", "tooltip": "TAESD folder (models/vae_approx) for live previews in ComfyUI."}),
                "decode_with_tiny_vae": ("BOOLEAN", {"default": False, "tooltip": "Decode final images with the tiny VAE too: much faster, lower quality."}),
                "attention_slicing": ("BOOLEAN", {"default": False, "tooltip": "Less VRAM for attention, usually slower."}),
                "vae_slicing": ("BOOLEAN", {"default": False, "tooltip": "Decode batches one image at a time (less VRAM)."}),
                "vae_tiling": ("BOOLEAN", {"default": False, "tooltip": "Decode in tiles: large images on small GPUs."}),
                "channels_last": ("BOOLEAN", {"default": False, "tooltip": "UNet in channels-last memory format (can help on CUDA)."}),
                "torch_compile": ("BOOLEAN", {"default": False, "tooltip": "torch.compile the UNet: slow first run, faster after (CUDA)."}),
                "cpu_offload": ("BOOLEAN", {"default": False, "tooltip": "Standalone CUDA only: keep models on the CPU until used. Ignored inside ComfyUI."}),
                "step_cache_interval": ("INT", {"default": 0, "min": 0, "max": 10, "tooltip": "DeepCache: run the full UNet every N steps and reuse deep features between (0 = off; needs the DeepCache package). Faster, slightly different images."}),
                "allow_download": dev["allow_download"],
                "keep_loaded": dev["keep_loaded"],
            },
        }

    def load(self, model, scheduler, device, dtype, config, tiny_vae="none", decode_with_tiny_vae=False,
             attention_slicing=False, vae_slicing=False, vae_tiling=False, channels_last=False, torch_compile=False,
             cpu_offload=False, step_cache_interval=0, allow_download=False, keep_loaded=True):
        from ..core.diffusion.loading import load_pipeline
        from ..core.diffusion.speed import SpeedOptions
        from ._common import pick_model

        speed = SpeedOptions(attention_slicing, vae_slicing, vae_tiling, channels_last, torch_compile, cpu_offload, int(step_cache_interval))
        options = load_options(device=device, dtype=dtype, allow_download=allow_download, keep_loaded=keep_loaded)
        handle = load_pipeline(pick_model(model, "", "diffusers"), options=options, config=config, scheduler=scheduler,
                               speed=speed, tiny_vae=tiny_vae, tiny_vae_decode=decode_with_tiny_vae)
        return (handle,)


class LLMAssistGenerate(_DrawNode):
    DESCRIPTION = "Text to image: draw from a prompt spec (weighted terms honoured) or text boxes."

    @classmethod
    def INPUT_TYPES(cls):
        req, opt = _common_inputs(with_size=True)
        return {"required": req, "optional": opt}

    def run(self, pipeline, seed, steps, cfg, width, height, batch_size, prompt=None, positive="", negative="", clip_skip=0):
        from ..core.diffusion.run import run

        req = _request(prompt, positive, negative, seed=seed, steps=steps, cfg=cfg, width=width, height=height,
                       batch_size=batch_size, clip_skip=clip_skip)
        return run(pipeline, "txt2img", req)


def _strength():
    return ("FLOAT", {"default": 0.6, "min": 0.01, "max": 1.0, "step": 0.01, "tooltip": "How much to change: 0.3 keeps the picture, 1.0 redraws it (inpaint: 1.0 ignores what was under the mask)."})


def _image_inputs(mask: str | None, strength_default: float = 0.6):
    req, opt = _common_inputs(with_size=False)
    req = {"pipeline": req.pop("pipeline"), "image": ("IMAGE", {"tooltip": "Input image(s); sides not multiples of 8 are resized for the model and back."}), **req}
    strength = _strength()
    strength[1]["default"] = strength_default
    req["strength"] = strength
    if mask == "required":
        req["mask"] = ("MASK", {"tooltip": "Region to repaint: 1 = repaint, 0 = keep (ComfyUI's convention)."})
    elif mask == "optional":
        opt["mask"] = ("MASK", {"tooltip": "Optional region to change (1 = change); without it the whole image is edited."})
    return req, opt


class LLMAssistEnhance(_DrawNode):
    DESCRIPTION = "Image to image: redraw the input guided by the prompt (e.g. its own description), keeping its layout."

    @classmethod
    def INPUT_TYPES(cls):
        req, opt = _image_inputs(None, 0.4)
        return {"required": req, "optional": opt}

    def run(self, pipeline, image, seed, steps, cfg, batch_size, strength, prompt=None, positive="", negative="", clip_skip=0):
        from ..core.diffusion.run import run

        req = _request(prompt, positive, negative, seed=seed, steps=steps, cfg=cfg, batch_size=batch_size, strength=strength, clip_skip=clip_skip)
        return run(pipeline, "img2img", req, image=image)


class LLMAssistRepair(_DrawNode):
    DESCRIPTION = ("Inpaint: repaint the masked region (1 = repaint). True 9-channel inpaint models are used natively, "
                   "ordinary models through diffusers' latent-blend fallback. 'preserve unmasked' pastes the original "
                   "pixels back outside the mask (no mode keeps them exactly otherwise).")

    @classmethod
    def INPUT_TYPES(cls):
        req, opt = _image_inputs("required", 1.0)
        opt["preserve_unmasked"] = ("BOOLEAN", {"default": True, "tooltip": "Paste the original pixels back where the mask is 0 (exact), fading over 'feather' px inside the mask."})
        opt["feather"] = ("INT", {"default": 0, "min": 0, "max": 64, "tooltip": "Pixels over which the repaint fades in inside the mask edge (0 = hard edge)."})
        return {"required": req, "optional": opt}

    def run(self, pipeline, image, seed, steps, cfg, batch_size, strength, mask, prompt=None, positive="", negative="",
            clip_skip=0, preserve_unmasked=True, feather=0):
        from ..core.diffusion.run import run

        req = _request(prompt, positive, negative, seed=seed, steps=steps, cfg=cfg, batch_size=batch_size, strength=strength,
                       clip_skip=clip_skip, preserve_unmasked=preserve_unmasked, feather=feather)
        return run(pipeline, "inpaint", req, image=image, mask=mask)


class LLMAssistEdit(_DrawNode):
    DESCRIPTION = ("Edit: regenerate the image from an edited prompt (e.g. 'cat' -> 'fox', '+at night'). With a mask it "
                   "inpaints the masked region, without one it runs image to image; InstructPix2Pix-type pipelines "
                   "take the prompt as an instruction and use image guidance.")

    @classmethod
    def INPUT_TYPES(cls):
        req, opt = _image_inputs("optional", 0.6)
        opt["image_guidance_scale"] = ("FLOAT", {"default": 1.5, "min": 0.0, "max": 10.0, "step": 0.1, "tooltip": "InstructPix2Pix pipelines only: how closely to follow the input image."})
        opt["preserve_unmasked"] = ("BOOLEAN", {"default": True, "tooltip": "With a mask: paste the original pixels back where the mask is 0."})
        return {"required": req, "optional": opt}

    def run(self, pipeline, image, seed, steps, cfg, batch_size, strength, prompt=None, positive="", negative="",
            clip_skip=0, mask=None, image_guidance_scale=1.5, preserve_unmasked=True):
        from ..core.diffusion.run import run

        req = _request(prompt, positive, negative, seed=seed, steps=steps, cfg=cfg, batch_size=batch_size, strength=strength,
                       clip_skip=clip_skip, image_guidance_scale=image_guidance_scale, preserve_unmasked=preserve_unmasked)
        return run(pipeline, "edit", req, image=image, mask=mask)


NODE_CLASS_MAPPINGS = {
    "LLMAssistLoadPipeline": LLMAssistLoadPipeline,
    "LLMAssistGenerate": LLMAssistGenerate,
    "LLMAssistEnhance": LLMAssistEnhance,
    "LLMAssistRepair": LLMAssistRepair,
    "LLMAssistEdit": LLMAssistEdit,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LLMAssistLoadPipeline": "Load Diffusion Pipeline",
    "LLMAssistGenerate": "Generate",
    "LLMAssistEnhance": "Enhance",
    "LLMAssistRepair": "Repair",
    "LLMAssistEdit": "Edit",
}
