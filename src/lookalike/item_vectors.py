"""Embeddings of catalog items: from the feature cache when it has them, else by decoding the image again."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lookalike.catalog.repository import ItemRecord

if TYPE_CHECKING:
    from lookalike.engine import Engine


def item_vectors(engine: Engine, records: Sequence[ItemRecord]) -> tuple[list[ItemRecord], np.ndarray]:
    """``(records, vectors)`` in the given order, without the items whose image can no longer be read."""
    cache = engine.featurizer.cache
    if cache is not None and records:
        found, features = cache.get([r.content_hash for r in records])
    else:
        found, features = np.zeros(len(records), bool), np.zeros((len(records), 0), np.float32)
    vectors = np.zeros((len(records), engine.head.dim), np.float32)
    if found.any():
        vectors[found] = engine.embed(features[found])
    ok = found.copy()
    misses = [i for i in range(len(records)) if not found[i]]
    if misses:
        by_path = {records[i].path: i for i in misses}
        for batch in engine.featurizer.iter_batches([records[i] for i in misses], lambda r: Path(r.path)):
            if batch.items:
                rows = [by_path[r.path] for r in batch.items]
                vectors[rows] = engine.embed(batch.features)
                ok[rows] = True
    return [r for r, good in zip(records, ok, strict=True) if good], vectors[ok]
