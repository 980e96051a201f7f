"""Evaluating retrieval end to end: features (cached) -> embeddings -> metrics, for the model under test
and, on request, the baselines (frozen backbone without the head; raw pixels).

Two protocols: the *category* protocol (queries not in the gallery; relevant = same category or item id) and
the *exact-item* protocol (gallery items re-photographed; relevant = the very item), which is what a shopper
photographing a garment the shop sells experiences."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lookalike.concurrency import bounded_map
from lookalike.data.sources import CatalogEntry
from lookalike.embedding.featurizer import Featurizer
from lookalike.embedding.head import EmbeddingHead, l2_normalize
from lookalike.embedding.labelled import LabelledFeatures, collect_features, encode_labels, positive_labels
from lookalike.errors import ImageDecodeError
from lookalike.evaluation.metrics import RetrievalMetrics, exact_item_metrics, retrieval_metrics
from lookalike.io.images import decode_image

PIXELS_SIZE = 32
Progress = Callable[[str, int, int], None]  # (stage, done, total)
Sets = dict[str, LabelledFeatures]


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


def item_labels(queries: Sequence[CatalogEntry], gallery: Sequence[CatalogEntry]) -> tuple[np.ndarray, np.ndarray]:
    """Item labels of exact-item queries (their ``source`` gallery image) and of the gallery: the item id where
    every gallery entry has one (any image of the product counts), else the image itself."""
    use_ids = bool(gallery) and all(e.item_id for e in gallery)
    row_of = {str(e.path): i for i, e in enumerate(gallery)}
    g = encode_labels([e.item_id for e in gallery]) if use_ids else np.arange(len(gallery))
    q = np.array([g[row_of[s]] if (s := str(e.metadata.get("source", ""))) in row_of else -1 for e in queries])
    return q, g


@dataclass
class Evaluation:
    """Category-protocol rows and exact-item rows, each named ``"<model> / <query set>"``; the first row of
    each is the head under test."""

    rows: dict[str, RetrievalMetrics]
    exact: dict[str, dict[str, float]] = field(default_factory=dict)


def evaluate(
    featurizer: Featurizer,
    head: EmbeddingHead,
    query_sets: Mapping[str, Sequence[CatalogEntry]],
    gallery: Sequence[CatalogEntry],
    baselines: bool = False,
    progress: Progress | None = None,
    frozen: Featurizer | None = None,
    exact_sets: Mapping[str, Sequence[CatalogEntry]] | None = None,
) -> Evaluation:
    """Both protocols for the head under test and, with ``baselines``, the frozen backbone and raw pixels.
    ``exact_sets`` hold re-photographed gallery items, each naming its gallery image in ``metadata["source"]``.
    The frozen-backbone baseline uses ``frozen`` (the pretrained backbone, when ``featurizer``'s is fine-tuned)."""

    def stage(name: str) -> Callable[[int, int], None] | None:
        return (lambda done, total: progress(name, done, total)) if progress else None

    def features(using: Featurizer, named: str) -> tuple[LabelledFeatures, Sets, Sets]:
        g = collect_features(using, gallery, stage(f"{named}gallery features"))
        q = {name: collect_features(using, entries, stage(f"{named}{name} query features"))
             for name, entries in query_sets.items()}
        e = {name: collect_features(using, entries, stage(f"{named}{name} exact-item features"))
             for name, entries in (exact_sets or {}).items()}
        return g, q, e

    result = Evaluation({})

    def measure(model: str, embed: Callable[[LabelledFeatures], np.ndarray], g: LabelledFeatures, q: Sets,
                e: Sets) -> None:
        g_vectors = l2_normalize(embed(g))
        for name, data in q.items():
            result.rows[f"{model} / {name}"] = _metrics(embed(data), data, g_vectors, g)
        for name, data in e.items():
            q_items, g_items = item_labels(data.entries, g.entries)
            result.exact[f"{model} / {name}"] = exact_item_metrics(l2_normalize(embed(data)), q_items, g_vectors,
                                                                   g_items)

    g, q, e = features(featurizer, "")
    measure(f"{head.kind} head", lambda d: head(d.features), g, q, e)
    if baselines:
        if frozen is not None and frozen is not featurizer:
            g, q, e = features(frozen, "frozen backbone ")
        measure("frozen backbone", lambda d: d.features, g, q, e)
        measure("raw pixels", lambda d: pixel_features(d.entries, featurizer.workers), g, q, e)
    return result


def write_exact_item_sets(gallery: Sequence[CatalogEntry], folder: Path, n: int,
                          styles: Sequence[str] = ("mild", "strong", "studio"), seed: int = 0) -> dict[str, Path]:
    """Manifests of ``n`` seeded gallery items re-photographed in each style (``exact-<style>`` seeds: never a
    training view's), written once under ``folder``."""
    from lookalike.data.photolike import STYLES, write_photo_like_set

    return {style: write_photo_like_set(list(gallery), folder / style, n, f"exact-{style}-{seed}", STYLES[style])
            for style in styles}
