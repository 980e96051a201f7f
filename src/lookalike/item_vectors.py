"""Embeddings of catalog items: from the feature cache when it has them, else by decoding the image again."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lookalike.catalog.repository import ItemRecord
from lookalike.embedding.featurizer import Featurizer
from lookalike.embedding.head import EmbeddingHead
from lookalike.engine import Engine

log = logging.getLogger(__name__)


def readable_item_vectors(featurizer: Featurizer, head: EmbeddingHead, records: Sequence[ItemRecord],
                          ) -> tuple[list[ItemRecord], np.ndarray]:
    """``(records, vectors)`` in the given order, without the items whose image can no longer be read."""
    kept, vectors, _ = embed_records(featurizer, head, records)
    return kept, vectors


def sample_item_vectors(engine: Engine, size: int, seed: int = 0, *, in_id_order: bool = False,
                        ) -> tuple[list[ItemRecord], np.ndarray]:
    """A seeded sample of up to ``size`` indexed items and their embeddings (see :func:`readable_item_vectors`)."""
    ids = engine.store.ids()
    sample = np.random.default_rng(seed).choice(ids, size=min(size, len(ids)), replace=False) if len(ids) else ids
    if in_id_order:
        sample = np.sort(sample)
    records = engine.catalog.get_items(sample.tolist())
    return readable_item_vectors(engine.featurizer, engine.head, [records[int(i)] for i in sample if int(i) in records])


def embed_records(
    featurizer: Featurizer, head: EmbeddingHead, records: Sequence[ItemRecord]
) -> tuple[list[ItemRecord], np.ndarray, list[tuple[ItemRecord, str]]]:
    """``(records, vectors, unreadable)``: the embeddings of the readable items in the given order, and why the
    others could not be read."""
    cache = featurizer.cache
    if cache is not None and records:
        found, features = cache.get([r.content_hash for r in records])
    else:
        found, features = np.zeros(len(records), bool), np.zeros((len(records), 0), np.float32)
    vectors = np.zeros((len(records), head.dim), np.float32)
    if found.any():
        vectors[found] = head(features[found])
    ok = found.copy()
    unreadable: list[tuple[ItemRecord, str]] = []
    misses = [i for i in range(len(records)) if not found[i]]
    if misses:
        log.info("%d items are not in the feature cache; decoding them again", len(misses))
        by_path = {records[i].path: i for i in misses}
        for batch in featurizer.iter_batches([records[i] for i in misses], lambda r: Path(r.path)):
            unreadable += batch.failures
            if batch.items:
                rows = [by_path[r.path] for r in batch.items]
                vectors[rows] = head(batch.features)
                ok[rows] = True
    return [r for r, good in zip(records, ok, strict=True) if good], vectors[ok], unreadable
