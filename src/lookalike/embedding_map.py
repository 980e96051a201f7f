"""The catalog projected to 2-D for the dashboard's map: a seeded sample, PCA then t-SNE, cached per index version.

:class:`MapJob` computes it in one background thread at a time and says meanwhile how far it got."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.calibrations import Calibration, load_or_fit
from lookalike.engine import Engine
from lookalike.item_vectors import sample_item_vectors

log = logging.getLogger(__name__)

MAX_POINTS = 4000
TSNE_ITERATIONS = 500  # both phases
TSNE_EXAGGERATED = 250  # of which early exaggeration
TSNE_REPORT_EVERY = 10  # divides both phases
TSNE_THREADS = min(4, os.cpu_count() or 1)  # the same map whatever the count; cores left for searches
TSNE_START = 0.1  # the share of the work done when t-SNE starts iterating: its iterations take nearly all the time

Progress = Callable[[float, str], None]  # (fraction done, what it is doing)


def _ignore(fraction: float, stage: str) -> None:
    pass


def _tsne(vectors: np.ndarray, seed: int, progress: Progress) -> np.ndarray:
    """2-D t-SNE of ``vectors`` (openTSNE, Barnes-Hut: early exaggeration, then the main phase), reporting every
    ``TSNE_REPORT_EVERY`` iterations of the two counted together (from TSNE_START to 1)."""
    from openTSNE import TSNE

    done = itertools.count(TSNE_REPORT_EVERY, TSNE_REPORT_EVERY)  # each phase numbers its iterations from 1

    def iteration(i: int, error: float, embedding: np.ndarray) -> bool:
        n = min(next(done), TSNE_ITERATIONS)
        progress(TSNE_START + (1 - TSNE_START) * n / TSNE_ITERATIONS, f"t-SNE, iteration {n} of {TSNE_ITERATIONS}")
        return False  # go on

    tsne = TSNE(n_components=2, perplexity=min(30.0, (len(vectors) - 1) / 3), random_state=seed,
                early_exaggeration_iter=TSNE_EXAGGERATED, n_iter=TSNE_ITERATIONS - TSNE_EXAGGERATED,
                neighbors="exact", n_jobs=TSNE_THREADS, callbacks=iteration, callbacks_every_iters=TSNE_REPORT_EVERY)
    return np.nan_to_num(np.asarray(tsne.fit(vectors)))  # NaN when all the vectors are the same


def compute_map(engine: Engine, max_points: int = MAX_POINTS, seed: int = 0,
                progress: Progress = _ignore) -> dict[str, Any]:
    """Points ``{id, x, y, category}`` for a sample of the catalog, coordinates scaled to [0, 1]."""
    from sklearn.decomposition import PCA

    progress(0.0, "sampling the catalog")
    items = len(engine.store)
    progress(0.02, f"embedding a sample of {min(max_points, items):,} items")
    kept, vectors = sample_item_vectors(engine, max_points, seed, in_id_order=True)
    records = {r.id: r for r in kept}
    chosen = [r.id for r in kept]
    points: list[dict[str, Any]] = []
    if len(chosen) >= 5:
        progress(0.08, "PCA")
        reduced = PCA(n_components=min(30, vectors.shape[1], len(chosen) - 1), random_state=seed).fit_transform(vectors)
        progress(0.09, "t-SNE, finding neighbours")
        xy = _tsne(reduced, seed, progress)
        xy = (xy - xy.min(axis=0)) / np.maximum(np.ptp(xy, axis=0), 1e-9)
        points = [{"id": i, "x": round(float(x), 5), "y": round(float(y), 5), "category": records[i].category}
                  for i, (x, y) in zip(chosen, xy, strict=True)]
    progress(1.0, "done")
    return {"model_version": engine.model_version, "items": items, "points": points}


@dataclass(frozen=True)
class EmbeddingMap(Calibration):
    """A computed map, kept beside the index like the calibrations (and recomputed on the same rule)."""

    model_version: str
    items: int
    points: list[dict[str, Any]]


def load_or_compute_map(engine: Engine, path: Path, progress: Progress = _ignore) -> dict[str, Any]:
    """The saved map when it was made for this model and roughly this catalog size, else a new one (saved)."""
    return asdict(load_or_fit(EmbeddingMap, path, engine, lambda e: EmbeddingMap(**compute_map(e, progress=progress))))


@dataclass(frozen=True)
class MapProgress:
    """How far the computation got: what the API answers (202) until the map is ready."""

    progress: float
    stage: str
    elapsed_s: float
    status: str = "computing"


class MapFailed(RuntimeError):
    """The last computation raised; the next :meth:`MapJob.poll` starts another."""


class MapJob:
    """The map of one catalog (cached at ``path``), computed in a background thread: however many ask at once,
    one computation runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._result: dict[str, Any] | None = None
        self._running = False
        self._error: str | None = None
        self._progress = (0.0, "starting")
        self._started = 0.0

    def poll(self, engine: Engine) -> dict[str, Any] | MapProgress:
        """The finished map for the engine's model, else its progress (starting a computation unless one runs).
        Raises :class:`MapFailed` once after a computation failed."""
        with self._lock:
            if self._result is not None and self._result["model_version"] == engine.model_version:
                return self._result
            if self._error is not None:
                error, self._error = self._error, None
                raise MapFailed(error)
            if not self._running:
                self._running, self._progress, self._started = True, (0.0, "starting"), time.monotonic()
                threading.Thread(target=self._run, args=(engine,), daemon=True, name="embedding-map").start()
            fraction, stage = self._progress
            return MapProgress(round(fraction, 4), stage, round(time.monotonic() - self._started, 1))

    def _report(self, fraction: float, stage: str) -> None:
        self._progress = (fraction, stage)

    def _run(self, engine: Engine) -> None:
        result, error = None, None
        try:
            result = load_or_compute_map(engine, self.path, self._report)
        except Exception as exc:  # reported to the client that polls next
            log.exception("the embedding map could not be computed")
            error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._running = False
            if result is not None:
                self._result = result
            self._error = error
