"""How alike two images' pixels are once aligned: the evidence that tells a copied listing (re-encoded, resized,
cropped a little) from a different garment that an embedding puts as close.

Each image is kept as a small grey thumbnail (:func:`grey_thumbnail`). Two thumbnails are compared by the
correlation of their pixels after the second is mapped onto the first: its garment's centroid onto the first's,
its spread (the garment's radius of gyration) to the first's, then the best of a few sub-pixel shifts around
that, for the pairs that the first alignment leaves close. Crops and resizes move and scale a garment and
re-encoding adds noise, none of which changes the pixels much once aligned, while two different garments, however
alike in kind, differ somewhere. The comparison is symmetric and vectorized over pairs: every transform is a zoom
and a shift, so the resampling is separable (along rows, then columns).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

GREY_SIDE = 28  # thumbnails are compared at this size; smaller images (few catalogs have them) are enlarged
SHIFTS = (-0.5, 0.0, 0.5)  # pixels, tried around the shift that matches their centroids
REFINE_FROM = 0.9  # pairs whose first alignment scores less are not refined (different garments, most of them)
CHUNK = 2048  # pairs resampled at once
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2  # SSIM's stabilizing constants for 8-bit pixels


def grey_thumbnail(image: Image.Image) -> bytes:
    """The image in grey, GREY_SIDE x GREY_SIDE (antialiased), row by row."""
    return image.convert("L").resize((GREY_SIDE, GREY_SIDE), Image.Resampling.LANCZOS).tobytes()


def aligned_similarity(left: list[bytes], right: list[bytes]) -> np.ndarray:
    """For each pair of thumbnails (see :func:`grey_thumbnail`), the correlation of their pixels at the best
    alignment (see the module docstring): 1 for the same picture, about 0 for unrelated ones."""
    out = np.zeros(len(left), np.float32)
    for start in range(0, len(left), CHUNK):
        a, b = _pixels(left[start : start + CHUNK]), _pixels(right[start : start + CHUNK])
        first = np.maximum(_mapped_similarity(a, b, (0.0,)), _mapped_similarity(b, a, (0.0,)))
        close = np.flatnonzero(first >= REFINE_FROM)
        if len(close):
            a, b = a[close], b[close]
            first[close] = np.maximum(_mapped_similarity(a, b, SHIFTS), _mapped_similarity(b, a, SHIFTS))
        out[start : start + len(first)] = first
    return out


def _pixels(thumbnails: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(thumbnails), np.uint8).reshape(-1, GREY_SIDE, GREY_SIDE).astype(np.float32)


def _moments(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(background, centroid x, centroid y, radius of gyration) of each image's garment: its pixels weighted by how
    far they are from the background (the median of the border)."""
    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
    background = np.median(border, axis=1)
    weight = np.abs(images - background[:, None, None])
    total = weight.sum(axis=(1, 2)) + 1e-6
    axis = np.arange(GREY_SIDE, dtype=np.float32)
    cx = (weight.sum(axis=1) * axis).sum(axis=1) / total
    cy = (weight.sum(axis=2) * axis).sum(axis=1) / total
    spread = (weight.sum(axis=1) * (axis - cx[:, None]) ** 2).sum(axis=1) + (
        weight.sum(axis=2) * (axis - cy[:, None]) ** 2).sum(axis=1)
    return background, cx, cy, np.sqrt(spread / total) + 1e-3


def _similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Global structural similarity (SSIM's luminance x contrast x structure, over the whole thumbnail) of
    paired rows of pixels: 1 only for equal pixels; a copy keeps its brightness and contrast as well as its shapes,
    while the same silhouette in another shade loses the first two terms."""
    mean_a, mean_b = a.mean(axis=-1), b.mean(axis=-1)
    var_a, var_b = a.var(axis=-1), b.var(axis=-1)
    covariance = np.einsum("ij,ij->i", a - mean_a[:, None], b - mean_b[:, None]) / a.shape[-1]
    return ((2 * mean_a * mean_b + _C1) * (2 * covariance + _C2)
            / ((mean_a**2 + mean_b**2 + _C1) * (var_a + var_b + _C2)))


def _mapped_similarity(a: np.ndarray, b: np.ndarray, shifts: tuple[float, ...]) -> np.ndarray:
    """The best correlation of ``a`` with ``b`` resampled into ``a``'s frame, over the shifts tried."""
    bg_a, cx_a, cy_a, r_a = _moments(a)
    bg_b, cx_b, cy_b, r_b = _moments(b)
    target = a.reshape(len(a), -1)
    axis = np.arange(GREY_SIDE, dtype=np.float32)
    best = np.full(len(a), -1.0, np.float32)
    scale = (r_b / r_a)[:, None]
    for dx in shifts:
        columns = _interpolated(b, cx_b[:, None] + (axis - cx_a[:, None]) * scale + dx, along=2, fill=bg_b)
        for dy in shifts:
            mapped = _interpolated(columns, cy_b[:, None] + (axis - cy_a[:, None]) * scale + dy, along=1, fill=bg_b)
            best = np.maximum(best, _similarity(target, mapped.reshape(len(a), -1)))
    return best


def _interpolated(images: np.ndarray, positions: np.ndarray, along: int, fill: np.ndarray) -> np.ndarray:
    """``images`` sampled at fractional ``positions`` (one row of GREY_SIDE per image) along an axis (1: rows,
    2: columns), linearly; positions outside the image take the ``fill`` value."""
    low = np.clip(np.floor(positions), 0, GREY_SIDE - 2).astype(np.int64)
    frac = np.clip(positions - low, 0.0, 1.0)
    outside = (positions < -0.5) | (positions > GREY_SIDE - 0.5)
    shape = (len(images), 1, GREY_SIDE) if along == 2 else (len(images), GREY_SIDE, 1)
    low, frac, outside = low.reshape(shape), frac.reshape(shape).astype(np.float32), outside.reshape(shape)
    values = (np.take_along_axis(images, np.broadcast_to(low, images.shape), axis=along) * (1 - frac)
              + np.take_along_axis(images, np.broadcast_to(low + 1, images.shape), axis=along) * frac)
    return np.where(outside, fill[:, None, None], values)

