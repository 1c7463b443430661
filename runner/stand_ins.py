"""Headless stand-ins for the few ComfyUI core nodes the example workflows use.

Same class names, input names, widgets, return types and IMAGE/MASK conventions as core
(``IMAGE`` float32 [B,H,W,3] in 0..1, ``MASK`` [B,H,W], LoadImage's mask = 1 - alpha), the same
file naming (``prefix_00001_.png``) and the same PNG text chunks ("prompt", "workflow") as
ComfyUI's SaveImage, so a saved PNG dropped on the editor restores its workflow. Written from
core's documented behaviour; torch / numpy / PIL are imported only when a node runs.
"""
from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import random
import sys
import time
from pathlib import Path

MAX_RESOLUTION = 16384
ANNOTATIONS = {" [input]": "input", " [output]": "output", " [temp]": "temp"}


def _host():
    from ..core import host  # noqa: PLC0415

    return host


def temp_directory() -> Path:
    """Where PreviewImage writes: a ``temp`` folder under the output directory."""
    return _host().output_directory() / "temp"


def annotated_filepath(name: str) -> Path:
    """Core's "name [input|output|temp]" convention; plain names are in the input directory."""
    base = _host().input_directory()
    for suffix, kind in ANNOTATIONS.items():
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            base = {"input": _host().input_directory(), "output": _host().output_directory(),
                    "temp": temp_directory()}[kind]
            break
    return Path(os.path.join(base, name))


def _image_files() -> list[str]:
    folder = _host().input_directory()
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file()
                  and (mimetypes.guess_type(p.name)[0] or "").startswith("image/"))


def _file_hash(name: str) -> str:
    return hashlib.sha256(annotated_filepath(name).read_bytes()).hexdigest()


def _check_image(name) -> bool | str:
    if not annotated_filepath(str(name)).is_file():
        return (f"Invalid image file: {name} (not in the input folder {_host().input_directory()}: "
                "put it there, pass --input DIR, or --set NODE_ID.image=FILE)")
    return True


class LoadImage:
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "load_image"
    DESCRIPTION = "Loads an image (all frames of an animated file) from the input folder."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": (_image_files(), {"image_upload": True})}}

    def load_image(self, image):
        import numpy as np  # noqa: PLC0415
        import torch  # noqa: PLC0415
        from PIL import Image, ImageOps, ImageSequence  # noqa: PLC0415

        img = Image.open(annotated_filepath(image))
        images, masks, size = [], [], None
        for frame in ImageSequence.Iterator(img):
            frame = ImageOps.exif_transpose(frame)
            if frame.mode == "I":
                frame = frame.point(lambda v: v * (1 / 255))
            rgb = frame.convert("RGB")
            size = size or rgb.size
            if rgb.size != size:  # core skips frames whose size differs from the first
                continue
            images.append(torch.from_numpy(np.array(rgb).astype(np.float32) / 255.0)[None])
            if "A" in frame.getbands():
                alpha = np.array(frame.getchannel("A")).astype(np.float32) / 255.0
                mask = 1.0 - torch.from_numpy(alpha)
            elif frame.mode == "P" and "transparency" in frame.info:
                alpha = np.array(frame.convert("RGBA").getchannel("A")).astype(np.float32) / 255.0
                mask = 1.0 - torch.from_numpy(alpha)
            else:
                mask = torch.zeros((64, 64), dtype=torch.float32)
            masks.append(mask[None])
        if len(images) > 1 and img.format not in ("MPO",):
            return torch.cat(images, dim=0), torch.cat(masks, dim=0)
        return images[0], masks[0]

    @classmethod
    def IS_CHANGED(cls, image):
        return _file_hash(image)

    @classmethod
    def VALIDATE_INPUTS(cls, image):
        return _check_image(image)


class LoadImageMask:
    _color_channels = ["alpha", "red", "green", "blue"]
    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "load_image"

    @classmethod
    def INPUT_TYPES(cls):
        files = sorted(p.name for p in _host().input_directory().glob("*") if p.is_file())
        return {"required": {"image": (files, {"image_upload": True}),
                             "channel": (cls._color_channels,)}}

    def load_image(self, image, channel):
        import numpy as np  # noqa: PLC0415
        import torch  # noqa: PLC0415
        from PIL import Image, ImageOps  # noqa: PLC0415

        img = ImageOps.exif_transpose(Image.open(annotated_filepath(image)))
        if img.getbands() != ("R", "G", "B", "A"):
            if img.mode == "I":
                img = img.point(lambda v: v * (1 / 255))
            img = img.convert("RGBA")
        band = channel[0].upper()
        if band in img.getbands():
            mask = torch.from_numpy(np.array(img.getchannel(band)).astype(np.float32) / 255.0)
            if band == "A":
                mask = 1.0 - mask
        else:
            mask = torch.zeros((64, 64), dtype=torch.float32)
        return (mask[None],)

    @classmethod
    def IS_CHANGED(cls, image, channel):
        return _file_hash(image)

    @classmethod
    def VALIDATE_INPUTS(cls, image):
        return _check_image(image)


def _fill_vars(prefix: str, width: int, height: int) -> str:
    now = time.localtime()
    for key, value in (("%width%", width), ("%height%", height), ("%year%", now.tm_year),
                       ("%month%", f"{now.tm_mon:02}"), ("%day%", f"{now.tm_mday:02}"),
                       ("%hour%", f"{now.tm_hour:02}"), ("%minute%", f"{now.tm_min:02}"),
                       ("%second%", f"{now.tm_sec:02}")):
        prefix = prefix.replace(key, str(value))
    return prefix


def save_image_path(prefix: str, output_dir: Path, width=0, height=0):
    """(folder, file stem, next counter, subfolder) with core's ``stem_00001_.png`` numbering."""
    prefix = _fill_vars(prefix, width, height) if "%" in prefix else prefix
    norm = os.path.normpath(prefix)
    subfolder, stem = os.path.dirname(norm), os.path.basename(norm)
    output_dir = Path(output_dir).resolve()
    folder = (output_dir / subfolder).resolve()
    if folder != output_dir and output_dir not in folder.parents:
        raise ValueError(f"filename_prefix {prefix!r} would save outside the output folder "
                         f"{output_dir}: use a relative prefix without '..'")
    counter = 0
    if folder.is_dir():
        for name in os.listdir(folder):
            head, tail = name[: len(stem) + 1], name[len(stem) + 1:]
            if os.path.normcase(head[:-1]) == os.path.normcase(stem) and head[-1:] == "_":
                digits = tail.split("_")[0]
                counter = max(counter, int(digits) if digits.isdigit() else 0)
    return folder, stem, counter + 1, subfolder


class SaveImage:
    CATEGORY = "image"
    RETURN_TYPES = ()
    FUNCTION = "save_images"
    OUTPUT_NODE = True
    DESCRIPTION = "Saves the input images to the output directory."
    type = "output"
    prefix_append = ""
    compress_level = 4

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE", {"tooltip": "The images to save."}),
                             "filename_prefix": ("STRING", {"default": "ComfyUI"})},
                "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    def _base_dir(self) -> Path:
        return _host().output_directory()

    def save_images(self, images, filename_prefix="ComfyUI", prompt=None, extra_pnginfo=None):
        import numpy as np  # noqa: PLC0415
        from PIL import Image  # noqa: PLC0415
        from PIL.PngImagePlugin import PngInfo  # noqa: PLC0415

        folder, stem, counter, subfolder = save_image_path(
            filename_prefix + self.prefix_append, self._base_dir(), images[0].shape[1], images[0].shape[0])
        folder.mkdir(parents=True, exist_ok=True)
        results = []
        for batch_number, image in enumerate(images):
            array = np.clip(255.0 * image.cpu().numpy(), 0, 255).astype(np.uint8)
            metadata = PngInfo()
            if prompt is not None:
                metadata.add_text("prompt", json.dumps(prompt))
            for key, value in (extra_pnginfo or {}).items():
                metadata.add_text(key, json.dumps(value))
            file = f"{stem.replace('%batch_num%', str(batch_number))}_{counter:05}_.png"
            Image.fromarray(array).save(folder / file, pnginfo=metadata,
                                        compress_level=self.compress_level)
            results.append({"filename": file, "subfolder": subfolder, "type": self.type})
            counter += 1
        return {"ui": {"images": results}}


class PreviewImage(SaveImage):
    type = "temp"
    compress_level = 1

    def __init__(self):
        self.prefix_append = "_temp_" + "".join(random.choice("abcdefghijklmnopqrstupvxyz")
                                                for _ in range(5))

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",)},
                "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    def _base_dir(self) -> Path:
        return temp_directory()


class PreviewAny:
    CATEGORY = "utils"
    RETURN_TYPES = ()
    FUNCTION = "main"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"source": ("*", {})}}

    def main(self, source=None):
        value = "None"
        if isinstance(source, str):
            value = source
        elif isinstance(source, (int, float, bool)):
            value = str(source)
        elif source is not None:
            try:
                value = json.dumps(source)
            except Exception:
                try:
                    value = str(source)
                except Exception:
                    value = "source exists, but could not be serialized."
        return {"ui": {"text": (value,)}}


def _primitive(name, kind, options, returns):
    def execute(self, value):
        return (value,)

    return type(name, (), {
        "CATEGORY": "utils/primitive", "RETURN_TYPES": (returns,), "FUNCTION": "execute",
        "INPUT_TYPES": classmethod(lambda cls: {"required": {"value": (kind, dict(options))}}),
        "execute": execute})


PrimitiveString = _primitive("PrimitiveString", "STRING", {}, "STRING")
PrimitiveStringMultiline = _primitive("PrimitiveStringMultiline", "STRING", {"multiline": True}, "STRING")
PrimitiveInt = _primitive("PrimitiveInt", "INT", {"min": -sys.maxsize, "max": sys.maxsize,
                                                  "control_after_generate": True}, "INT")
PrimitiveFloat = _primitive("PrimitiveFloat", "FLOAT", {"min": -sys.maxsize, "max": sys.maxsize}, "FLOAT")
PrimitiveBoolean = _primitive("PrimitiveBoolean", "BOOLEAN", {}, "BOOLEAN")


class SolidMask:
    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "solid"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "value": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
            "width": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
            "height": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1})}}

    def solid(self, value, width, height):
        import torch  # noqa: PLC0415

        return (torch.full((1, height, width), value, dtype=torch.float32),)


class ImageToMask:
    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "image_to_mask"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "channel": (["red", "green", "blue", "alpha"],)}}

    def image_to_mask(self, image, channel):
        return (image[:, :, :, ["red", "green", "blue", "alpha"].index(channel)],)


class MaskToImage:
    CATEGORY = "mask"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "mask_to_image"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",)}}

    def mask_to_image(self, mask):
        flat = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1]))
        return (flat.movedim(1, -1).expand(-1, -1, -1, 3),)


class InvertMask:
    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "invert"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",)}}

    def invert(self, mask):
        return (1.0 - mask,)


class ImageInvert:
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "invert"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}}

    def invert(self, image):
        return (1.0 - image,)


class ImageBatch:
    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "batch"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image1": ("IMAGE",), "image2": ("IMAGE",)}}

    def batch(self, image1, image2):
        import torch  # noqa: PLC0415
        import torch.nn.functional as F  # noqa: PLC0415

        if image1.shape[1:] != image2.shape[1:]:  # center-crop to image1's aspect, then bilinear
            h, w = image1.shape[1:3]
            oh, ow = image2.shape[1:3]
            x = y = 0
            if ow / oh > w / h:
                x = round((ow - ow * (w / h) / (ow / oh)) / 2)
            elif ow / oh < w / h:
                y = round((oh - oh * (ow / oh) / (w / h)) / 2)
            crop = image2[:, y:oh - y, x:ow - x].movedim(-1, 1)
            image2 = F.interpolate(crop, size=(h, w), mode="bilinear").movedim(1, -1)
        return (torch.cat((image1, image2), dim=0),)


STAND_IN_CLASSES = {cls.__name__: cls for cls in (
    LoadImage, LoadImageMask, SaveImage, PreviewImage, PreviewAny, PrimitiveString,
    PrimitiveStringMultiline, PrimitiveInt, PrimitiveFloat, PrimitiveBoolean, SolidMask,
    ImageToMask, MaskToImage, InvertMask, ImageInvert, ImageBatch)}

STAND_IN_DISPLAY_NAMES = {"PreviewAny": "Preview Any", "PrimitiveString": "String",
                          "PrimitiveInt": "Int", "PrimitiveFloat": "Float",
                          "PrimitiveBoolean": "Boolean", "SaveImage": "Save Image",
                          "PreviewImage": "Preview Image", "LoadImage": "Load Image"}
