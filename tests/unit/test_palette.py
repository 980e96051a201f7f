"""The garment palette (lookalike.signatures.palette): what it counts, and the same floats as its plain definition,
so palettes stored by earlier versions still compare with new ones."""

import numpy as np
from PIL import Image

from lookalike.signatures import (
    FOREGROUND,
    MIN_CHROMA,
    MIN_FOREGROUND,
    PALETTE_BINS,
    PALETTE_GREYS,
    PALETTE_HUES,
    PALETTE_SIDE,
    palette,
)


def plain_palette(image: Image.Image) -> np.ndarray:
    """The palette as first written: reductions over the channel axis and ``np.add.at``."""
    thumb = image.convert("RGB")
    thumb.thumbnail((PALETTE_SIDE, PALETTE_SIDE), Image.Resampling.BOX)
    pixels = np.asarray(thumb, np.float32) / 255.0
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    away = np.abs(pixels - np.median(border, axis=0)).max(axis=-1)
    garment = pixels[away > FOREGROUND] if (away > FOREGROUND).mean() >= MIN_FOREGROUND else pixels.reshape(-1, 3)
    top, bottom = garment.max(axis=1), garment.min(axis=1)
    chroma = top - bottom
    counts = np.zeros(PALETTE_BINS, np.float64)
    coloured = chroma >= MIN_CHROMA
    if coloured.any():
        rgb, c, t = garment[coloured], chroma[coloured], top[coloured]
        r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
        hue = np.where(t == r, ((g - b) / c) % 6, np.where(t == g, (b - r) / c + 2, (r - g) / c + 4))
        position = ((hue / 6.0) % 1.0) * PALETTE_HUES
        low = np.floor(position).astype(np.int64) % PALETTE_HUES
        share = position - np.floor(position)
        np.add.at(counts, low, 1.0 - share)
        np.add.at(counts, (low + 1) % PALETTE_HUES, share)
    lightness = (top[~coloured] + bottom[~coloured]) / 2
    greys = np.minimum((lightness * PALETTE_GREYS).astype(np.int64), PALETTE_GREYS - 1)
    np.add.at(counts, PALETTE_HUES + greys, 1.0)
    return np.sqrt(counts / counts.sum()).astype(np.float32)


def garment(colour: tuple[int, int, int], background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    image = Image.new("RGB", (90, 120), background)
    image.paste(Image.new("RGB", (50, 80), colour), (20, 20))
    return image


def test_a_red_garment_on_white_is_all_red_and_a_grey_one_all_mid_grey():
    red = palette(garment((220, 20, 20)))
    assert red[0] > 0.99 and np.isclose(np.linalg.norm(red), 1.0)
    grey = palette(garment((128, 128, 128)))
    assert grey[PALETTE_HUES + 1] > 0.99


def test_the_same_floats_as_the_plain_definition_on_varied_images():
    rng = np.random.default_rng(7)
    images = [garment(tuple(int(v) for v in rng.integers(0, 256, 3)), tuple(int(v) for v in rng.integers(0, 256, 3)))
              for _ in range(40)]
    images += [Image.fromarray(rng.integers(0, 256, (int(h), int(w), 3), np.uint8))
               for h, w in rng.integers(20, 200, (40, 2))]
    images += [Image.fromarray(np.full((64, 48, 3), 200, np.uint8)), garment((10, 200, 10)).convert("L")]
    for image in images:
        assert np.array_equal(palette(image), plain_palette(image))


def test_an_image_given_away_gives_the_same_palette_and_is_only_shrunk():
    rng = np.random.default_rng(11)
    for height, width in rng.integers(20, 400, (20, 2)):
        pixels = rng.integers(0, 256, (int(height), int(width), 3), np.uint8)
        owned = Image.fromarray(pixels)
        assert np.array_equal(palette(owned, own=True), plain_palette(Image.fromarray(pixels)))
        assert max(owned.size) <= PALETTE_SIDE
    grey = garment((10, 200, 10)).convert("L")
    assert np.array_equal(palette(grey, own=True), plain_palette(grey)) and grey.size == (90, 120)  # copied: not RGB
