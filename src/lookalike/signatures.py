"""Perceptual signatures of catalog images, for telling a copied listing from a look-alike and for ranking by
colour:

- a 64-bit perceptual hash (imagehash's pHash: the low frequencies of the grey image, which resizing, re-encoding
  and small crops keep);
- a 4x4 colour thumbnail (which a colour variant of one garment does not share with it);
- a small grey thumbnail (``lookalike.pixels``), whose pixels, once aligned, tell a copy from a look-alike;
- a *palette*: the colours of the garment itself, its pixels told from the background (the median colour of the
  image's border) and counted in ``PALETTE_HUES`` hue bins (shared with the neighbouring bin in proportion) or, when
  nearly grey, in ``PALETTE_GREYS`` lightness bins. Stored as the square roots of the shares, so a vector of unit
  length whose inner product with another is their Bhattacharyya coefficient: 1 for the same colours, 0 for none in
  common.
"""

from __future__ import annotations

from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image

from lookalike.pixels import grey_thumbnail

COLOUR_GRID = 4
HASH_BITS = 64
PALETTE_HUES = 12
PALETTE_GREYS = 3  # dark, mid, light
PALETTE_BINS = PALETTE_HUES + PALETTE_GREYS
PALETTE_SIDE = 48  # the palette is counted on a thumbnail this wide
MIN_CHROMA = 0.15  # max - min of a pixel's RGB (0 to 1) from which its hue counts
FOREGROUND = 0.12  # how far (largest channel difference, 0 to 1) a pixel is from the background to be the garment
MIN_FOREGROUND = 0.03  # below this share of garment pixels, the whole image counts
PALETTE_NOISE = 0.03  # one image's palettes, decoded at full size and drafted small, agree to at least 1 - this


@dataclass(frozen=True)
class Signature:
    phash: int
    colour: bytes  # COLOUR_GRID x COLOUR_GRID RGB, row by row
    palette: bytes = b""  # PALETTE_BINS float32 (see the module docstring); empty when not computed
    grey: bytes = b""  # lookalike.pixels.grey_thumbnail; empty when not computed

    def hash_distance(self, other: Signature) -> int:
        """Differing bits of the two perceptual hashes (0 to 64)."""
        return (self.phash ^ other.phash).bit_count()

    def colour_distance(self, other: Signature) -> float:
        """Mean absolute difference of the colour thumbnails, 0 (same) to 1 (black against white)."""
        a, b = np.frombuffer(self.colour, np.uint8), np.frombuffer(other.colour, np.uint8)
        return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() / 255.0)

    def palette_vector(self) -> np.ndarray:
        return np.frombuffer(self.palette, np.float32)


def signature(image: Image.Image) -> Signature:
    """The signature of a decoded image."""
    rgb = image.convert("RGB")
    phash = int(str(imagehash.phash(rgb)), 16)
    thumb = rgb.resize((COLOUR_GRID, COLOUR_GRID), Image.Resampling.BOX)
    return Signature(phash, thumb.tobytes(), palette(rgb).tobytes(), grey_thumbnail(rgb))


def palette(image: Image.Image, *, own: bool = False) -> np.ndarray:
    """The garment's colours (see the module docstring): PALETTE_BINS float32 of unit length. ``own``: the caller
    is done with ``image``, which may then be shrunk in place (no copy)."""
    thumb = image if own and image.mode == "RGB" else image.convert("RGB")
    thumb.thumbnail((PALETTE_SIDE, PALETTE_SIDE), Image.Resampling.BOX)
    pixels = np.asarray(thumb, np.float32) / 255.0
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    away = _channel_max(np.abs(pixels - _median(border)))
    foreground = away > FOREGROUND
    garment = pixels[foreground] if foreground.mean() >= MIN_FOREGROUND else pixels.reshape(-1, 3)
    top = _channel_max(garment)
    bottom = np.minimum(np.minimum(garment[:, 0], garment[:, 1]), garment[:, 2])
    chroma = top - bottom
    coloured = chroma >= MIN_CHROMA
    position = _hue(garment[coloured], top[coloured], chroma[coloured]) * PALETTE_HUES
    low = np.floor(position)
    share = position - low
    hues = low.astype(np.int64) % PALETTE_HUES
    lightness = (top[~coloured] + bottom[~coloured]) / 2
    greys = np.minimum((lightness * PALETTE_GREYS).astype(np.int64), PALETTE_GREYS - 1)
    counts = np.bincount(np.concatenate([hues, (hues + 1) % PALETTE_HUES, PALETTE_HUES + greys]),
                         np.concatenate([1.0 - share, share, np.ones(len(greys), np.float32)]), PALETTE_BINS)
    return np.sqrt(counts / counts.sum()).astype(np.float32)


def _median(pixels: np.ndarray) -> np.ndarray:
    """Each channel's median, the same floats as ``np.median(pixels, axis=0)`` in a third of its time."""
    half = len(pixels) // 2
    if len(pixels) % 2:
        return np.partition(pixels, half, axis=0)[half]
    middle = np.partition(pixels, [half - 1, half], axis=0)
    return (middle[half - 1] + middle[half]) / np.float32(2)


def _channel_max(pixels: np.ndarray) -> np.ndarray:
    """The largest of the last axis's 3 channels: as ``max(axis=-1)``, without its slow reduction over a short axis."""
    return np.maximum(np.maximum(pixels[..., 0], pixels[..., 1]), pixels[..., 2])


def _hue(rgb: np.ndarray, top: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """HSV hue of pixels with chroma > 0, in [0, 1)."""
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    hue = np.where(top == r, ((g - b) / chroma) % 6, np.where(top == g, (b - r) / chroma + 2, (r - g) / chroma + 4))
    return (hue / 6.0) % 1.0


def colour_mismatch(match: np.ndarray) -> np.ndarray:
    """How unlike two garments' colours are, 0 to 1, from their palette similarity: below ``PALETTE_NOISE`` of
    difference, none (decoding the same image two ways moves its palette that much)."""
    return np.clip((1.0 - match - PALETTE_NOISE) / (1.0 - PALETTE_NOISE), 0.0, 1.0)


def colourfulness(palettes: np.ndarray) -> np.ndarray:
    """The share of each palette's garment pixels that are coloured rather than grey (0 to 1)."""
    return np.square(np.atleast_2d(palettes)[:, :PALETTE_HUES]).sum(axis=1)
