"""Fitting the embedding head on a catalog's (cached) backbone features."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from lookalike.data.photolike import photo_like_bytes
from lookalike.data.sources import CatalogEntry
from lookalike.embedding.featurizer import Featurizer


@dataclass
class LabelledFeatures:
    """Backbone features of the readable entries of a catalog, with their categories."""

    entries: list[CatalogEntry]
    features: np.ndarray
    failures: list[tuple[CatalogEntry, str]]
    images: list[Callable[[], Path | bytes]] = field(default_factory=list)  # each entry's image, read again

    def __add__(self, other: LabelledFeatures) -> LabelledFeatures:
        return LabelledFeatures(self.entries + other.entries, np.concatenate([self.features, other.features]),
                                self.failures + other.failures, self.images + other.images)


def positive_labels(entries: Sequence[CatalogEntry]) -> list[str | None]:
    """What makes two entries alike: their item id when every entry has one, else their category."""
    use_ids = all(e.item_id for e in entries)
    return [e.item_id if use_ids else e.category for e in entries]


def collect_features(
    featurizer: Featurizer, entries: Sequence[CatalogEntry], progress: Callable[[int, int], None] | None = None
) -> LabelledFeatures:
    """Features of every entry (from the cache where present), skipping unreadable images."""
    ok: list[CatalogEntry] = []
    chunks: list[np.ndarray] = []
    failures: list[tuple[CatalogEntry, str]] = []
    done = 0
    for batch in featurizer.iter_batches(entries, lambda e: e.path):
        ok += batch.items
        chunks.append(batch.features)
        failures += batch.failures
        done += len(batch.items) + len(batch.failures)
        if progress:
            progress(done, len(entries))
    features = np.concatenate(chunks) if chunks else np.zeros((0, featurizer.extractor.num_features), np.float32)
    return LabelledFeatures(ok, features, failures, [partial(Path, e.path) for e in ok])


def collect_photo_like_features(
    featurizer: Featurizer, entries: Sequence[CatalogEntry], n: int, seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> LabelledFeatures:
    """Features of ``n`` photo-like renderings of a seeded sample of ``entries`` (cached like any image), each
    labelled like its source: extra positives that teach the head colours, backgrounds, scale and blur."""
    sample = random.Random(seed).sample(list(entries), min(n, len(entries)))
    views = list(enumerate(sample))

    def render(view: tuple[int, CatalogEntry]) -> bytes:
        index, entry = view
        with Image.open(entry.path) as image:
            return photo_like_bytes(image, random.Random(f"train-{seed}-{index}"))

    ok: list[tuple[int, CatalogEntry]] = []
    chunks: list[np.ndarray] = []
    done = 0
    for batch in featurizer.iter_batches(views, render):
        ok += batch.items
        chunks.append(batch.features)
        done += len(batch.items) + len(batch.failures)
        if progress:
            progress(done, len(views))
    features = np.concatenate(chunks) if chunks else np.zeros((0, featurizer.extractor.num_features), np.float32)
    return LabelledFeatures([entry for _, entry in ok], features, [],
                            [partial(render, view) for view in ok])
