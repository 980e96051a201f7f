"""Calibrated confidence for a similarity score, fitted on the catalog itself, at two levels.

*Same kind*: sample catalog items, search their nearest neighbours (themselves excluded) and record, for each
(score, neighbour) pair, whether the neighbour shares the item's category; a logistic curve fitted to those
pairs turns a cosine score into "the probability that a result this similar is the same kind of garment" (a
catalog without categories gets the empirical rank of the score among neighbour scores instead).
*Same item*: re-encoded copies of sampled items against their originals (positives) and the items' nearest
other items (negatives), from :func:`lookalike.duplicates.copy_evidence`; a second logistic curve gives "the
probability that a result this similar is the very item".

The confidence shown is their mean: about 1 for the very item, about one half for a garment of the same kind,
about 0 for another kind, so a near-identical result and a merely same-category one read differently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lookalike.calibrations import Calibration, load_or_fit
from lookalike.duplicates import copy_evidence
from lookalike.engine import Engine
from lookalike.item_vectors import sample_item_vectors

log = logging.getLogger(__name__)

SAMPLE = 1000
NEIGHBOURS = 10


@dataclass
class ConfidenceModel(Calibration):
    """Same kind: ``sigmoid(slope * score + intercept)``, or the empirical CDF of ``quantiles`` when
    uncategorized; same item: ``sigmoid(item_slope * score + item_intercept)`` when fitted (``item_slope`` > 0)."""

    model_version: str
    items: int
    slope: float = 0.0
    intercept: float = 0.0
    quantiles: list[float] | None = None
    item_slope: float = 0.0
    item_intercept: float = 0.0

    def same_kind(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, np.float64)
        if self.quantiles:
            return np.interp(scores, self.quantiles, np.linspace(0, 1, len(self.quantiles)))
        return 1.0 / (1.0 + np.exp(-(self.slope * scores + self.intercept)))

    def same_item(self, scores: np.ndarray) -> np.ndarray | None:
        if self.item_slope <= 0:
            return None
        return 1.0 / (1.0 + np.exp(-(self.item_slope * np.asarray(scores, np.float64) + self.item_intercept)))

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        kind, item = self.same_kind(scores), self.same_item(scores)
        return kind if item is None else (kind + item) / 2


def fit_logistic(x: np.ndarray, y: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """Maximum-likelihood (slope, intercept) of P(y=1 | x), lightly L2-regularized (slope and intercept alike)."""
    from sklearn.linear_model import LogisticRegression

    # The intercept is a constant column so that the penalty, 1e-3 / 2 * |w|^2 (C = 1e3), covers it too.
    x = np.asarray(x, np.float64)
    design = np.stack([x, np.ones_like(x)], axis=1)
    fit = LogisticRegression(C=1e3, fit_intercept=False, solver="newton-cholesky", tol=1e-10, max_iter=iterations)
    fit.fit(design, np.asarray(y, np.float64))
    return float(fit.coef_[0, 0]), float(fit.coef_[0, 1])


def calibrate(engine: Engine, seed: int = 0) -> ConfidenceModel:
    """Fit the confidence model on a sample of the catalog's items."""
    kept, vectors = sample_item_vectors(engine, SAMPLE, seed)
    model = ConfidenceModel(engine.model_version, len(engine.store))
    if len(kept) < 2:
        return model
    records = {r.id: r for r in kept}
    chosen = [r.id for r in kept]
    scores, neighbours = engine.store.search(vectors, NEIGHBOURS + 1)
    neighbour_records = engine.catalog.get_items(int(n) for n in np.unique(neighbours) if n >= 0)
    xs, ys = [], []
    for item, row_scores, row_ids in zip(chosen, scores, neighbours, strict=True):
        category = records[item].category
        for score, other in zip(row_scores.tolist(), row_ids.tolist(), strict=True):
            if other == item or other not in neighbour_records:
                continue
            xs.append(score)
            ys.append(neighbour_records[other].category == category and category is not None)
    x, y = np.asarray(xs), np.asarray(ys, np.float64)
    if len(x) == 0:
        return model
    if 0 < y.mean() < 1 and any(records[i].category for i in chosen):
        model.slope, model.intercept = fit_logistic(x, y)
    else:
        model.quantiles = np.quantile(x, np.linspace(0, 1, 21)).tolist()
    evidence = copy_evidence(engine, seed=seed)
    if len(evidence.copy_scores) and len(evidence.nearest):
        item_x = np.concatenate([evidence.copy_scores, evidence.nearest])
        item_y = np.r_[np.ones(len(evidence.copy_scores)), np.zeros(len(evidence.nearest))]
        slope, intercept = fit_logistic(item_x, item_y)
        if slope > 0:
            model.item_slope, model.item_intercept = slope, intercept
    log.info("confidence calibrated on %d neighbour pairs and %d copies", len(x), len(evidence.copy_scores))
    return model


def load_or_calibrate(engine: Engine, path: Path) -> ConfidenceModel:
    """The cached model for this index version and roughly this size, else a freshly fitted one."""
    return load_or_fit(ConfidenceModel, path, engine, calibrate)
