"""Photo-like variants of catalog images: what a shopper's camera makes of a garment.

Colour changes, light or dark backgrounds, lighting, scale, position, rotation, blur and JPEG compression,
drawn from a seeded generator so a query set (and a training augmentation) is reproducible.
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

PHOTO_SIZE = 224


def _colourize(gray: Image.Image, rng: random.Random) -> Image.Image:
    """Map a garment mask (white on black) to a random garment colour over a random background."""
    garment = tuple(rng.randint(0, 255) for _ in range(3))
    light = rng.random() < 0.5
    background = tuple(rng.randint(170, 255) if light else rng.randint(0, 90) for _ in range(3))
    return ImageOps.colorize(gray, black=background, white=garment)  # type: ignore[arg-type]


def photo_like_bytes(image: Image.Image, rng: random.Random, size: int = PHOTO_SIZE) -> bytes:
    """One random photo-like rendering of ``image`` as JPEG bytes (``size`` x ``size``)."""
    gray = image.convert("L")
    looks_like_mask = np.asarray(gray).mean() < 110  # a dark-background catalog shot (e.g. Fashion-MNIST)
    picture = _colourize(gray, rng) if looks_like_mask and rng.random() < 0.8 else image.convert("RGB")
    picture = picture.resize((size, size), Image.Resampling.BICUBIC)
    corner = picture.getpixel((0, 0))
    # scale and position on a canvas of the background colour
    scale = rng.uniform(0.6, 1.0)
    side = max(8, int(size * scale))
    picture = picture.resize((side, side), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (size, size), corner)  # type: ignore[arg-type]
    slack = size - side
    canvas.paste(picture, (rng.randint(0, slack), rng.randint(0, slack)))
    # rotation, filling with the background
    canvas = canvas.rotate(rng.uniform(-20, 20), resample=Image.Resampling.BILINEAR, fillcolor=corner)
    # lighting
    canvas = ImageEnhance.Brightness(canvas).enhance(rng.uniform(0.7, 1.3))
    canvas = ImageEnhance.Contrast(canvas).enhance(rng.uniform(0.7, 1.3))
    # blur and compression
    if rng.random() < 0.7:
        canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 2.0)))
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=rng.randint(30, 70))
    return buffer.getvalue()


def photo_like(image: Image.Image, rng: random.Random, size: int = PHOTO_SIZE) -> Image.Image:
    """The same rendering, decoded."""
    return Image.open(io.BytesIO(photo_like_bytes(image, rng, size))).convert("RGB")


def write_photo_like_set(entries: list, out_dir: Path, n: int, seed: int = 0) -> Path:
    """Render photo-like variants of (a seeded sample of) ``entries`` as JPEGs + ``manifest.csv``; idempotent.

    Only pass entries that are not in the gallery (e.g. the test split): the point is unseen photos.
    """
    manifest = out_dir / "manifest.csv"
    if manifest.is_file():
        return manifest
    sample = random.Random(seed).sample(list(entries), min(n, len(entries)))
    rows = []
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    for i, entry in enumerate(sample):
        name = f"images/photo-{i:05d}.jpg"
        with Image.open(entry.path) as source:
            data = photo_like_bytes(source, random.Random(f"{seed}-{i}"))
        (out_dir / name).write_bytes(data)
        rows.append({"path": name, "category": entry.category, "item_id": entry.item_id,
                     "source": str(entry.path)})
    tmp = manifest.with_suffix(".tmp")
    pd.DataFrame(rows).to_csv(tmp, index=False)
    os.replace(tmp, manifest)
    return manifest
