"""Fitting the embedding head on a catalog's (cached) backbone features."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from lookalike.data.sources import CatalogEntry
from lookalike.embedding.featurizer import Featurizer
from lookalike.embedding.head import EmbeddingHead, fit_pca_head


@dataclass
class LabelledFeatures:
    """Backbone features of the readable entries of a catalog, with their categories."""

    entries: list[CatalogEntry]
    features: np.ndarray
    failures: list[tuple[CatalogEntry, str]]

    @property
    def categories(self) -> list[str | None]:
        return [e.category for e in self.entries]


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
    return LabelledFeatures(ok, features, failures)


def fit_head(data: LabelledFeatures, backbone: str, dim: int = 128) -> EmbeddingHead:
    """The head for these features: PCA to ``dim`` (the triplet-trained head replaces it)."""
    return fit_pca_head(data.features, backbone, dim)
