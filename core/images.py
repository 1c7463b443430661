"""IMAGE / MASK helpers. IMAGE: float32 [B,H,W,3] in 0..1 on the CPU; MASK: [B,H,W] or [H,W], 1 = repaint."""
from __future__ import annotations


def check_image(image, name: str = "image", values: bool = True):
    """Validate a ComfyUI IMAGE tensor and return it as float32 [B,H,W,3].

    ``values=False``: check only the shape and return a view (no copy of a float32 image; values
    not checked for NaN nor clamped, the caller does that in tiles)."""
    import torch

    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{name} must be an IMAGE tensor [B,H,W,3], got {type(image).__name__}: connect an IMAGE output")
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[0] == 0 or image.shape[1] == 0 or image.shape[2] == 0:
        raise ValueError(f"{name} must have shape [B,H,W,C] with B,H,W >= 1, got {tuple(image.shape)}")
    channels = image.shape[-1]
    if channels == 1:
        image = image.expand(-1, -1, -1, 3)
    elif channels == 4:
        image = image[..., :3]
    elif channels != 3:
        raise ValueError(f"{name} must have 1, 3 or 4 channels in the last dimension, got {channels} (shape {tuple(image.shape)})")
    image = image.float()
    if not values:
        return image
    if not torch.isfinite(image).all():
        raise ValueError(f"{name} contains NaN or infinite values: fix the node that produced it")
    return image.clamp(0.0, 1.0)


def check_mask(mask, height: int, width: int, batch: int, name: str = "mask"):
    """Validate a MASK and return float32 [batch,H,W] in 0..1 (broadcasting a single mask)."""
    import torch

    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name} must be a MASK tensor [B,H,W], got {type(mask).__name__}")
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim == 4 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim != 3:
        raise ValueError(f"{name} must have shape [B,H,W] or [H,W], got {tuple(mask.shape)}")
    if tuple(mask.shape[1:]) != (height, width):
        raise ValueError(
            f"{name} is {mask.shape[2]}x{mask.shape[1]} but the image is {width}x{height}: "
            "resize the mask to the image size"
        )
    if mask.shape[0] not in (1, batch):
        raise ValueError(f"{name} batch {mask.shape[0]} does not match image batch {batch}: give 1 mask or {batch}")
    mask = mask.float()
    if not torch.isfinite(mask).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return mask.clamp(0.0, 1.0).expand(batch, -1, -1).contiguous()


def to_pil(image):
    """IMAGE tensor -> list of PIL RGB images."""
    import numpy as np
    from PIL import Image

    image = check_image(image)
    arr = (image.cpu().numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
    return [Image.fromarray(a) for a in arr]


def from_pil(images):
    """PIL image(s) -> IMAGE tensor [B,H,W,3] (all the same size)."""
    import numpy as np
    import torch

    if not isinstance(images, (list, tuple)):
        images = [images]
    arrays = [np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0 for im in images]
    return torch.from_numpy(np.stack(arrays))


def from_nchw(tensor):
    """[B,3,H,W] in 0..1 -> IMAGE [B,H,W,3] float32 on the CPU."""
    return tensor.detach().float().cpu().clamp(0, 1).permute(0, 2, 3, 1).contiguous()
