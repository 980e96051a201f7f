"""The catalog projected to 2-D for the dashboard's map: a seeded sample, PCA then t-SNE, cached per index version."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from lookalike.engine import Engine

log = logging.getLogger(__name__)

MAX_POINTS = 4000


def compute_map(engine: Engine, max_points: int = MAX_POINTS, seed: int = 0) -> dict[str, Any]:
    """Points ``{id, x, y, category}`` for a sample of the catalog, coordinates scaled to [0, 1]."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    ids = engine.store.ids()
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(ids, size=min(max_points, len(ids)), replace=False)) if len(ids) else ids
    records = engine.catalog.get_items(sample.tolist())
    chosen = [int(i) for i in sample if int(i) in records]
    cache = engine.featurizer.cache
    found, features = cache.get([records[i].content_hash for i in chosen]) if cache else (np.zeros(0, bool), None)
    chosen = [i for i, ok in zip(chosen, found, strict=True) if ok]
    points: list[dict[str, Any]] = []
    if len(chosen) >= 5 and features is not None:
        vectors = engine.embed(features[found])
        reduced = PCA(n_components=min(30, vectors.shape[1], len(chosen) - 1), random_state=seed).fit_transform(vectors)
        xy = TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30.0, (len(chosen) - 1) / 3),
                  max_iter=500).fit_transform(reduced)
        xy = (xy - xy.min(axis=0)) / np.maximum(np.ptp(xy, axis=0), 1e-9)
        points = [{"id": i, "x": round(float(x), 5), "y": round(float(y), 5), "category": records[i].category}
                  for i, (x, y) in zip(chosen, xy, strict=True)]
    return {"model_version": engine.model_version, "items": len(ids), "points": points}


def load_or_compute_map(engine: Engine, path: Path) -> dict[str, Any]:
    """The cached map when it was made for this model and roughly this catalog size, else a new one."""
    try:
        cached = json.loads(path.read_text())
        size = len(engine.store)
        if cached["model_version"] == engine.model_version and abs(cached["items"] - size) <= 0.2 * max(size, 1):
            return cached
    except (OSError, ValueError, KeyError):
        pass
    result = compute_map(engine)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)
    return result
