"""Photo-like variants of catalog images: what a shopper's camera makes of a garment.

Colour changes, light or dark backgrounds, lighting, scale, position, rotation, blur and JPEG compression,
drawn from a seeded generator so a query set (and a training augmentation) is reproducible. A :class:`PhotoStyle`
sets how far each goes: ``PHOTO`` (training views and the photo-like category queries), ``MILD`` (a
dark-background catalog shot recoloured on a dark background, a steady hand, light blur and compression),
``STRONG`` (recoloured on a light background, which inverts a Fashion-MNIST image's polarity, with the full range
of pose, light, blur and compression) and ``STUDIO`` (recoloured on a light background in a 3:4 frame, the garment
at 75-95% of its width: a shopper's photo of a product, or a shop's own). A catalog shot that is not mask-like keeps
its own colours.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from lookalike.io.files import atomic_path

PHOTO_SIZE = 224


@dataclass(frozen=True)
class PhotoStyle:
    """How far a rendering departs from the catalog image: each effect's chance or range."""

    recolour: float  # chance that a mask-like (dark-background) image is recoloured on a new background
    light_background: float  # chance that a recoloured background is light
    scale: tuple[float, float]
    rotation: float  # degrees either way
    light: tuple[float, float]  # brightness and contrast factors
    blur: float  # chance of a Gaussian blur
    blur_radius: tuple[float, float]
    quality: tuple[int, int]  # JPEG quality
    aspect: float = 1.0  # the frame's height over its width (4 / 3: a portrait photo)


PHOTO = PhotoStyle(0.8, 0.5, (0.6, 1.0), 20, (0.7, 1.3), 0.7, (0.3, 2.0), (30, 70))
MILD = PhotoStyle(1.0, 0.0, (0.8, 1.0), 8, (0.85, 1.15), 0.5, (0.3, 1.0), (50, 85))
STRONG = PhotoStyle(1.0, 1.0, (0.6, 1.0), 20, (0.7, 1.3), 0.7, (0.3, 2.0), (30, 70))
STUDIO = PhotoStyle(1.0, 1.0, (0.75, 0.95), 5, (0.9, 1.1), 0.5, (0.3, 1.0), (70, 90), aspect=4 / 3)
STYLES = {"photo": PHOTO, "mild": MILD, "strong": STRONG, "studio": STUDIO}


def _colourize(gray: Image.Image, rng: random.Random, light_share: float) -> Image.Image:
    """Map a garment mask (white on black) to a random garment colour over a random background."""
    garment = tuple(rng.randint(0, 255) for _ in range(3))
    light = rng.random() < light_share
    background = tuple(rng.randint(170, 255) if light else rng.randint(0, 90) for _ in range(3))
    return ImageOps.colorize(gray, black=background, white=garment)  # type: ignore[arg-type]


def photo_like_bytes(image: Image.Image, rng: random.Random, size: int = PHOTO_SIZE,
                     style: PhotoStyle = PHOTO) -> bytes:
    """One random photo-like rendering of ``image`` as JPEG bytes, ``size`` pixels wide (and ``style.aspect`` times
    that high)."""
    gray = image.convert("L")
    looks_like_mask = np.asarray(gray).mean() < 110  # a dark-background catalog shot (e.g. Fashion-MNIST)
    recolour = looks_like_mask and rng.random() < style.recolour
    picture = _colourize(gray, rng, style.light_background) if recolour else image.convert("RGB")
    picture = picture.resize((size, size), Image.Resampling.BICUBIC)
    corner = picture.getpixel((0, 0))
    # scale and position on a canvas of the background colour
    scale = rng.uniform(*style.scale)
    side = max(8, int(size * scale))
    picture = picture.resize((side, side), Image.Resampling.BICUBIC)
    height = round(size * style.aspect)
    canvas = Image.new("RGB", (size, height), corner)  # type: ignore[arg-type]
    canvas.paste(picture, (rng.randint(0, size - side), rng.randint(0, height - side)))
    # rotation, filling with the background
    turn = rng.uniform(-style.rotation, style.rotation)
    canvas = canvas.rotate(turn, resample=Image.Resampling.BILINEAR, fillcolor=corner)
    # lighting
    canvas = ImageEnhance.Brightness(canvas).enhance(rng.uniform(*style.light))
    canvas = ImageEnhance.Contrast(canvas).enhance(rng.uniform(*style.light))
    # blur and compression
    if rng.random() < style.blur:
        canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(*style.blur_radius)))
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=rng.randint(*style.quality))
    return buffer.getvalue()


def photo_like(image: Image.Image, rng: random.Random, size: int = PHOTO_SIZE) -> Image.Image:
    """The same rendering, decoded."""
    return Image.open(io.BytesIO(photo_like_bytes(image, rng, size))).convert("RGB")


def write_photo_like_set(entries: list, out_dir: Path, n: int, seed: int | str = 0,
                         style: PhotoStyle = PHOTO) -> Path:
    """Render photo-like variants of (a seeded sample of) ``entries`` as JPEGs + ``manifest.csv``; idempotent.

    For category queries pass entries that are not in the gallery (e.g. the test split); for exact-item queries
    gallery entries with a seed no training view uses (training views are seeded ``train-<seed>-<n>``). A set made
    before is reused only if it was made from these very files: each row's ``source`` names its original by path,
    which a home moved or restored elsewhere no longer matches (exact-item queries would then find nothing).
    """
    manifest = out_dir / "manifest.csv"
    sample = random.Random(seed).sample(list(entries), min(n, len(entries)))
    if manifest.is_file() and _sources(manifest) == [str(entry.path) for entry in sample]:
        return manifest
    rows = []
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    for i, entry in enumerate(sample):
        name = f"images/photo-{i:05d}.jpg"
        with Image.open(entry.path) as source:
            data = photo_like_bytes(source, random.Random(f"{seed}-{i}"), style=style)
        (out_dir / name).write_bytes(data)
        rows.append({"path": name, "category": entry.category, "item_id": entry.item_id,
                     "source": str(entry.path)})
    with atomic_path(manifest) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    return manifest


def _sources(manifest: Path) -> list[str]:
    """The ``source`` column of a photo-like set's manifest ([] for one that cannot be read)."""
    try:
        return pd.read_csv(manifest, usecols=["source"], dtype=str, keep_default_na=False)["source"].tolist()
    except (ValueError, OSError, pd.errors.ParserError):
        return []
