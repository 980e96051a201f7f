"""Small generated garment-like test images: each category has a distinct shape, with random colour,
size and position, so a real backbone separates them and near-copies are easy to make."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

CATEGORIES = ("circles", "stripes", "checks")


def make_image(category: str, seed: int, size: int = 96) -> Image.Image:
    rng = random.Random(f"{category}-{seed}")
    background = tuple(rng.randint(200, 255) for _ in range(3))
    colour = tuple(rng.randint(0, 140) for _ in range(3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    if category == "circles":
        r = rng.randint(size // 5, size // 3)
        cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif category == "stripes":
        step = rng.randint(8, 16)
        for y in range(rng.randint(0, step), size, step):
            draw.rectangle((0, y, size, y + step // 2), fill=colour)
    elif category == "checks":
        step = rng.randint(10, 20)
        for y in range(0, size, step):
            for x in range(0, size, step):
                if (x // step + y // step) % 2 == 0:
                    draw.rectangle((x, y, x + step - 1, y + step - 1), fill=colour)
    else:
        raise ValueError(category)
    return image


def write_catalog(root: Path, per_category: int = 6, fmt: str = "PNG", start: int = 0) -> list[Path]:
    """``root/<category>/<category>-<i>.<ext>`` for every category; returns the paths written."""
    paths = []
    ext = {"PNG": "png", "JPEG": "jpg"}[fmt]
    for category in CATEGORIES:
        (root / category).mkdir(parents=True, exist_ok=True)
        for i in range(start, start + per_category):
            path = root / category / f"{category}-{i:03d}.{ext}"
            make_image(category, i).save(path, format=fmt)
            paths.append(path)
    return paths
