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
    sources: np.ndarray | None = None  # views only: the row of the image each was rendered from

    def with_views(self, views: LabelledFeatures) -> LabelledFeatures:
        """These images followed by ``views`` of them (rendered by :func:`collect_photo_like_features`)."""
        own = self.sources if self.sources is not None else np.arange(len(self.entries))
        view_sources = views.sources if views.sources is not None else np.zeros(0, np.int64)
        return LabelledFeatures(self.entries + views.entries, np.concatenate([self.features, views.features]),
                                self.failures + views.failures, self.images + views.images,
                                np.concatenate([own, own[view_sources]]))

    def instance_labels(self) -> np.ndarray:
        """Integer instance of every row: its item id where every entry has one, else the image it shows."""
        if self.entries and all(e.item_id for e in self.entries):
            return encode_labels([e.item_id for e in self.entries])
        return self.sources if self.sources is not None else np.arange(len(self.entries))

    def category_labels(self) -> np.ndarray | None:
        """Integer category of every row, or None when some entry has none."""
        if not self.entries or any(e.category is None for e in self.entries):
            return None
        return encode_labels([e.category for e in self.entries])


def encode_labels(labels: Sequence[str | None]) -> np.ndarray:
    """Integer codes of string labels (None is not allowed: every training item needs a label)."""
    if any(label is None for label in labels):
        raise ValueError("every training item needs a category or an item_id")
    _, codes = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
    return codes.astype(np.int64)


def positive_labels(entries: Sequence[CatalogEntry]) -> list[str | None]:
    """What makes two entries relevant in the category protocol: their item id when every entry has one, else
    their category."""
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
    labelled like its source and knowing its row (``sources``): positives of their own image and category that
    teach the head colours, backgrounds, scale and blur."""
    positions = random.Random(seed).sample(range(len(entries)), min(n, len(entries)))
    views = [(index, entries[p]) for index, p in enumerate(positions)]

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
    return LabelledFeatures([entry for _, entry in ok], features, [], [partial(render, view) for view in ok],
                            np.array([positions[index] for index, _ in ok], np.int64))
