"""Deterministic sample pictures for the headless demo and tests (no files shipped in git).

ComfyUI ships ``input/example.png``; headless runs draw a stand-in scene of the same name when
the input folder lacks one, plus ``example_mask.png`` (alpha hole in the middle) for repair.
"""
from __future__ import annotations

from pathlib import Path


def example_scene(size: int = 512):
    """A simple landscape: sky gradient, sun, hills, a house. Returns a PIL RGB image."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(image)
    horizon = int(size * 0.62)
    for y in range(horizon):
        t = y / max(horizon - 1, 1)
        draw.line([(0, y), (size, y)], fill=(int(70 + 120 * t), int(130 + 90 * t), int(230 - 30 * t)))
    s = size / 512
    draw.ellipse([380 * s, 60 * s, 460 * s, 140 * s], fill=(255, 214, 90))
    draw.polygon([(0, horizon), (160 * s, 250 * s), (330 * s, horizon)], fill=(70, 120, 80))
    draw.polygon([(200 * s, horizon), (400 * s, 230 * s), (size, horizon)], fill=(60, 105, 70))
    draw.rectangle([0, horizon, size, size], fill=(88, 160, 72))
    draw.rectangle([150 * s, 300 * s, 300 * s, 420 * s], fill=(180, 60, 50))
    draw.polygon([(135 * s, 300 * s), (225 * s, 230 * s), (315 * s, 300 * s)], fill=(90, 50, 40))
    draw.rectangle([205 * s, 350 * s, 245 * s, 420 * s], fill=(60, 40, 30))
    return image


def example_with_hole(size: int = 512):
    """The scene as RGBA whose alpha is 0 in a central square: LoadImage turns it into a mask (1 = repaint)."""
    image = example_scene(size).convert("RGBA")
    alpha = image.getchannel("A")
    lo, hi = int(size * 0.35), int(size * 0.65)
    alpha.paste(0, (lo, lo, hi, hi))
    image.putalpha(alpha)
    return image


def write_example_images(input_dir: str | Path, size: int = 512) -> list[Path]:
    """Write example.png / example_mask.png, and dataset/ (two pictures of different sizes, for the
    dataset_captioning example) into ``input_dir``, each unless it exists (never overwrite)."""
    input_dir = Path(input_dir)
    (input_dir / "dataset").mkdir(parents=True, exist_ok=True)
    written = []
    small = max(8, size * 3 // 4)
    for name, make in (("example.png", example_scene), ("example_mask.png", example_with_hole),
                       ("dataset/scene_1.png", example_scene),
                       ("dataset/scene_2.png", lambda _: example_scene(small).transpose(0))):
        path = input_dir / name
        if not path.exists():
            tmp = path.with_suffix(".tmp.png")
            make(size).save(tmp)
            tmp.replace(path)
            written.append(path)
    return written
