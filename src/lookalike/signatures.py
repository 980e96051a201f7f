"""Perceptual signatures of catalog images, for telling a copied listing from a look-alike: a 64-bit perceptual
hash (imagehash's pHash: the low frequencies of the grey image, which resizing, re-encoding and small crops keep)
and a 4x4 colour thumbnail (which a colour variant of one garment does not share with it)."""

from __future__ import annotations

from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image

COLOUR_GRID = 4
HASH_BITS = 64


@dataclass(frozen=True)
class Signature:
    phash: int
    colour: bytes  # COLOUR_GRID x COLOUR_GRID RGB, row by row

    def hash_distance(self, other: Signature) -> int:
        """Differing bits of the two perceptual hashes (0 to 64)."""
        return (self.phash ^ other.phash).bit_count()

    def colour_distance(self, other: Signature) -> float:
        """Mean absolute difference of the colour thumbnails, 0 (same) to 1 (black against white)."""
        a, b = np.frombuffer(self.colour, np.uint8), np.frombuffer(other.colour, np.uint8)
        return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() / 255.0)


def signature(image: Image.Image) -> Signature:
    """The signature of a decoded image."""
    rgb = image.convert("RGB")
    phash = int(str(imagehash.phash(rgb)), 16)
    thumb = rgb.resize((COLOUR_GRID, COLOUR_GRID), Image.Resampling.BOX)
    return Signature(phash, thumb.tobytes())
