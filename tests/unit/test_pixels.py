"""Aligned pixel similarity (lookalike.pixels): copies of small grey garments match, different garments of one kind
do not, and the duplicate rule uses it only where the embedding nominates a pair."""

from __future__ import annotations

import io
import itertools

import numpy as np
from PIL import Image

from lookalike.duplicates import PIXEL_MATCH, PIXEL_WIDTH, _agree, candidate_floor
from lookalike.pixels import aligned_similarity, grey_thumbnail
from lookalike.signatures import signature

from imagegen import PRODUCT_CATEGORIES, make_thumbnail_garment


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


GARMENTS = [make_thumbnail_garment(c, s) for c in PRODUCT_CATEGORIES for s in range(12)]
COPIES = {
    "2x resized": lambda im: im.resize((im.width * 2, im.height * 2), Image.Resampling.BICUBIC),
    "1-px crop, resized back": lambda im: im.crop((1, 1, im.width - 1, im.height - 1)).resize(
        im.size, Image.Resampling.BICUBIC),
    "JPEG q60": lambda im: _jpeg(im, 60),
}


def _similarity_to_copies(kind: str) -> np.ndarray:
    make = COPIES[kind]
    return aligned_similarity([grey_thumbnail(g) for g in GARMENTS], [grey_thumbnail(make(g)) for g in GARMENTS])


def test_a_picture_matches_itself_and_the_comparison_is_symmetric():
    a, b = grey_thumbnail(GARMENTS[0]), grey_thumbnail(GARMENTS[1])
    assert aligned_similarity([a], [a])[0] > 0.9999
    assert np.isclose(aligned_similarity([a], [b])[0], aligned_similarity([b], [a])[0])


def test_resized_and_cropped_copies_match_once_aligned():
    for kind in ("2x resized", "1-px crop, resized back"):
        assert (_similarity_to_copies(kind) >= PIXEL_MATCH).all(), kind


def test_most_jpeg_copies_of_tiny_images_match():
    # JPEG's 8x8 blocks are a large part of a 28-px image: on Fashion-MNIST 80% of q60 copies match (BENCHMARKS.md)
    assert (_similarity_to_copies("JPEG q60") >= PIXEL_MATCH).mean() >= 0.75


def test_different_garments_of_one_kind_do_not_match():
    pairs = list(itertools.combinations(range(len(GARMENTS)), 2))
    scores = aligned_similarity([grey_thumbnail(GARMENTS[a]) for a, _ in pairs],
                                [grey_thumbnail(GARMENTS[b]) for _, b in pairs])
    assert scores.max() < PIXEL_MATCH


def test_the_pixels_vouch_for_a_nominated_pair_within_their_floor_only():
    from lookalike.catalog.repository import ItemRecord

    original, other = GARMENTS[0], GARMENTS[1]
    copy = COPIES["1-px crop, resized back"](original)
    signatures = {"a": signature(original), "b": signature(copy), "c": signature(other)}

    def record(key: str) -> ItemRecord:
        return ItemRecord(ord(key), f"/x/{key}.png", key, "tees", None, {}, "m")

    threshold = 0.96
    inside = candidate_floor(threshold, PIXEL_WIDTH) + 0.01  # far below the hash's floor too
    pairs = [("a", "b"), ("a", "b"), ("a", "c"), ("a", "b")]
    scores = np.array([inside, inside, inside, candidate_floor(threshold, PIXEL_WIDTH) - 0.01])
    nominated = np.array([True, False, True, True])
    found = _agree(signatures, [record(x) for x, _ in pairs], [record(y) for _, y in pairs], scores, threshold,
                   nominated)
    # the copy, nominated and within the floor; not when the embedding did not nominate it, not another garment,
    # not below the floor
    assert found.tolist() == [True, False, False, False]
