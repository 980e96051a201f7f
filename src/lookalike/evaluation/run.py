"""Evaluating retrieval end to end: features (cached) -> embeddings -> metrics, for the model under test
and, on request, the baselines (frozen backbone without the head; raw pixels)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from lookalike.concurrency import bounded_map
from lookalike.data.sources import CatalogEntry
from lookalike.embedding.featurizer import Featurizer
from lookalike.embedding.head import EmbeddingHead, l2_normalize
from lookalike.embedding.train import LabelledFeatures, collect_features, positive_labels
from lookalike.errors import ImageDecodeError
from lookalike.evaluation.metrics import RetrievalMetrics, retrieval_metrics
from lookalike.io.images import decode_image

PIXELS_SIZE = 32
Progress = Callable[[str, int, int], None]  # (stage, done, total)


def relevance_labels(queries: Sequence[CatalogEntry], gallery: Sequence[CatalogEntry]) -> tuple[np.ndarray, np.ndarray]:
    """Integer labels deciding relevance: the item id where every entry has one, else the category."""
    names = [name or "" for name in positive_labels([*queries, *gallery])]
    _, codes = np.unique(np.asarray(names, dtype=object).astype(str), return_inverse=True)
    return codes[: len(queries)], codes[len(queries) :]


def pixel_features(entries: Sequence[CatalogEntry], workers: int = 2, size: int = PIXELS_SIZE) -> np.ndarray:
    """The raw-pixels baseline: each image as a ``size`` x ``size`` RGB thumbnail, flattened."""

    def thumb(entry: CatalogEntry) -> np.ndarray:
        try:
            image = decode_image(entry.path, draft_size=size).resize((size, size))
            return np.asarray(image, np.float32).ravel() / 255.0
        except ImageDecodeError:
            return np.zeros(size * size * 3, np.float32)

    return np.stack(list(bounded_map(thumb, entries, workers, 4 * workers)))


def _metrics(q: np.ndarray, qd: LabelledFeatures, g: np.ndarray, gd: LabelledFeatures) -> RetrievalMetrics:
    q_labels, g_labels = relevance_labels(qd.entries, gd.entries)
    return retrieval_metrics(l2_normalize(q), q_labels, l2_normalize(g), g_labels,
                             [e.category or "" for e in qd.entries], [e.category or "" for e in gd.entries])


def evaluate(
    featurizer: Featurizer,
    head: EmbeddingHead,
    query_sets: Mapping[str, Sequence[CatalogEntry]],
    gallery: Sequence[CatalogEntry],
    baselines: bool = False,
    progress: Progress | None = None,
    frozen: Featurizer | None = None,
) -> dict[str, RetrievalMetrics]:
    """Metrics rows named ``"<model> / <query set>"``; the first row is the head under test on the first set.
    The frozen-backbone baseline uses ``frozen`` (the pretrained backbone, when ``featurizer``'s is fine-tuned)."""

    def stage(name: str) -> Callable[[int, int], None] | None:
        return (lambda done, total: progress(name, done, total)) if progress else None

    gallery_data = collect_features(featurizer, gallery, stage("gallery features"))
    sets = {name: collect_features(featurizer, entries, stage(f"{name} query features"))
            for name, entries in query_sets.items()}
    rows: dict[str, RetrievalMetrics] = {}
    gallery_embedded = head(gallery_data.features)
    for name, data in sets.items():
        rows[f"{head.kind} head / {name}"] = _metrics(head(data.features), data, gallery_embedded, gallery_data)
    if baselines:
        if frozen is not None and frozen is not featurizer:
            gallery_data = collect_features(frozen, gallery_data.entries, stage("frozen backbone gallery features"))
            sets = {name: collect_features(frozen, data.entries, stage(f"frozen backbone {name} features"))
                    for name, data in sets.items()}
        for name, data in sets.items():
            rows[f"frozen backbone / {name}"] = _metrics(data.features, data, gallery_data.features, gallery_data)
        gallery_pixels = pixel_features(gallery_data.entries, featurizer.workers)
        for name, data in sets.items():
            rows[f"raw pixels / {name}"] = _metrics(pixel_features(data.entries, featurizer.workers), data,
                                                    gallery_pixels, gallery_data)
    return rows
