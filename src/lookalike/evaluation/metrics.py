"""Retrieval accuracy: precision@1, recall@K (hit rate), precision@K, mAP@10, MAP@R, NDCG@10, R-precision,
overall and per category, and the confusion matrix of query category vs. top-1 category.

Exact nearest neighbours by inner product (FAISS ``IndexFlatIP``) over L2-normalized embeddings. A gallery
item is relevant to a query when their labels are equal (the item id where a catalog has them, else the
category). Definitions follow pytorch-metric-learning's ``AccuracyCalculator`` where it has the metric
(precision_at_1, r_precision, mean_average_precision_at_r); tests check them against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np

RECALL_KS = (1, 5, 10)
PRECISION_KS = (1, 5, 10)
CURVE_KS = (1, 2, 3, 5, 10, 20, 50, 100)
MAP_K = 10
NDCG_K = 10


@dataclass
class RetrievalMetrics:
    """Every metric, overall and per query category, plus the top-1 confusion matrix."""

    overall: dict[str, float]
    per_category: dict[str, dict[str, float]]
    confusion: np.ndarray  # [query category, top-1 result category], counts
    categories: list[str]
    curve: dict[str, list[float]] = field(default_factory=dict)  # precision@K and recall@K for CURVE_KS
    queries: int = 0
    gallery: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "queries": self.queries,
            "gallery": self.gallery,
            "overall": self.overall,
            "per_category": self.per_category,
            "categories": self.categories,
            "confusion": self.confusion.tolist(),
            "curve": {"k": list(CURVE_KS), **self.curve},
        }


def knn(queries: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product: (scores, gallery row indices), best first."""
    index = faiss.IndexFlatIP(gallery.shape[1])
    index.add(np.ascontiguousarray(gallery, np.float32))
    return index.search(np.ascontiguousarray(queries, np.float32), min(k, len(gallery)))


def retrieval_metrics(
    query_embeddings: np.ndarray,
    query_labels: np.ndarray,
    gallery_embeddings: np.ndarray,
    gallery_labels: np.ndarray,
    query_categories: list[str] | None = None,
    gallery_categories: list[str] | None = None,
    chunk: int = 1024,
) -> RetrievalMetrics:
    """All metrics for queries against a gallery (no query is in the gallery).

    ``*_labels`` decide relevance; ``*_categories`` (default: the labels as text) group the per-category
    rows and the confusion matrix.
    """
    q_labels = np.asarray(query_labels)
    g_labels = np.asarray(gallery_labels)
    q_cats = np.asarray(query_categories if query_categories is not None else q_labels.astype(str))
    g_cats = np.asarray(gallery_categories if gallery_categories is not None else g_labels.astype(str))
    values, counts = np.unique(g_labels, return_counts=True)
    r_by_label = dict(zip(values.tolist(), counts.tolist(), strict=True))
    relevant_total = np.array([r_by_label.get(label, 0) for label in q_labels.tolist()], np.int64)
    max_r = int(relevant_total.max()) if len(relevant_total) else 0
    depth = max(max_r, max(CURVE_KS), MAP_K, NDCG_K)

    per_query: dict[str, list[np.ndarray]] = {}
    top1_cats: list[np.ndarray] = []
    for start in range(0, len(q_labels), chunk):
        stop = start + chunk
        _, idx = knn(query_embeddings[start:stop], gallery_embeddings, depth)
        rel = g_labels[idx] == q_labels[start:stop, None]  # (n, depth) bool
        rel = np.pad(rel, ((0, 0), (0, depth - rel.shape[1])))  # a gallery smaller than depth: misses
        r = relevant_total[start:stop]
        for name, value in _per_query_metrics(rel, r).items():
            per_query.setdefault(name, []).append(value)
        top1_cats.append(g_cats[idx[:, 0]])
    rows = {name: np.concatenate(parts) for name, parts in per_query.items()}
    top1 = np.concatenate(top1_cats) if top1_cats else np.zeros(0, str)

    categories = sorted(set(q_cats.tolist()) | set(g_cats.tolist()))
    position = {c: i for i, c in enumerate(categories)}
    confusion = np.zeros((len(categories), len(categories)), np.int64)
    np.add.at(confusion, ([position[c] for c in q_cats.tolist()], [position[c] for c in top1.tolist()]), 1)

    curve_names = [f"precision@{k}" for k in CURVE_KS] + [f"recall@{k}" for k in CURVE_KS]
    headline = {name: v for name, v in rows.items() if name not in curve_names or _is_headline(name)}
    overall = {name: float(values.mean()) for name, values in headline.items()}
    per_category = {
        c: {name: float(values[q_cats == c].mean()) for name, values in headline.items()}
        | {"queries": int((q_cats == c).sum())}
        for c in categories
        if (q_cats == c).any()
    }
    curve = {
        "precision": [float(rows[f"precision@{k}"].mean()) for k in CURVE_KS],
        "recall": [float(rows[f"recall@{k}"].mean()) for k in CURVE_KS],
    }
    return RetrievalMetrics(overall, per_category, confusion, categories, curve, len(q_labels), len(g_labels))


def _is_headline(name: str) -> bool:
    metric, k = name.split("@")
    return int(k) in (RECALL_KS if metric == "recall" else PRECISION_KS)


def _per_query_metrics(rel: np.ndarray, relevant_total: np.ndarray) -> dict[str, np.ndarray]:
    """Per-query values from the relevance of the ranked results (n, depth) and R per query."""
    n, depth = rel.shape
    ranks = np.arange(1, depth + 1)
    hits = np.cumsum(rel, axis=1)
    precision_at = hits / ranks  # precision@i for every i
    out: dict[str, np.ndarray] = {}
    for k in sorted(set(CURVE_KS) | set(RECALL_KS) | set(PRECISION_KS)):
        out[f"precision@{k}"] = precision_at[:, k - 1]
        out[f"recall@{k}"] = (hits[:, k - 1] > 0).astype(np.float64)
    # mAP@10: mean of precision at each relevant rank within the top 10, over min(10, R)
    top = rel[:, :MAP_K]
    out[f"mAP@{MAP_K}"] = (precision_at[:, :MAP_K] * top).sum(axis=1) / np.maximum(
        np.minimum(MAP_K, relevant_total), 1)
    # MAP@R and R-precision: only the first R results count, R = number of relevant gallery items
    within_r = ranks[None, :] <= relevant_total[:, None]
    out["MAP@R"] = (precision_at * rel * within_r).sum(axis=1) / np.maximum(relevant_total, 1)
    out["R-precision"] = (rel * within_r).sum(axis=1) / np.maximum(relevant_total, 1)
    # NDCG@10 with binary relevance
    discounts = 1.0 / np.log2(np.arange(2, NDCG_K + 2))
    dcg = (rel[:, :NDCG_K] * discounts).sum(axis=1)
    ideal = np.cumsum(discounts)[np.clip(np.minimum(NDCG_K, relevant_total) - 1, 0, None)]
    out[f"NDCG@{NDCG_K}"] = np.where(relevant_total > 0, dcg / ideal, 0.0)
    return out


EXACT_KS = (1, 5, 10)
SPREAD_K = 10


def exact_item_metrics(query_embeddings: np.ndarray, query_items: np.ndarray, gallery_embeddings: np.ndarray,
                       gallery_items: np.ndarray, chunk: int = 256) -> dict[str, float]:
    """How well re-photographed catalog items find themselves: recall@K of the very item (a gallery row whose
    item label equals the query's), the median and mean rank of its best row (1 = first; ties count in the
    item's favour), and the mean score spread, top-1 minus top-``SPREAD_K`` score (how much a result list's
    scores tell its results apart)."""
    rank, spread = exact_item_ranks(query_embeddings, query_items, gallery_embeddings, gallery_items, chunk)
    out = {f"recall@{k}": float((rank <= k).mean()) if len(rank) else 0.0 for k in EXACT_KS}
    out["median rank"] = float(np.median(rank)) if len(rank) else 0.0
    out["mean rank"] = float(rank.mean()) if len(rank) else 0.0
    out[f"score spread@{SPREAD_K}"] = float(spread.mean()) if len(spread) else 0.0
    out["queries"] = float(len(rank))
    return out


def exact_item_ranks(query_embeddings: np.ndarray, query_items: np.ndarray, gallery_embeddings: np.ndarray,
                     gallery_items: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per exact-item query (see :func:`exact_item_metrics`): the rank of its item's best row (a query without its
    item gets the gallery's size + 1), and its score spread, top-1 minus top-``SPREAD_K``."""
    q_items, g_items = np.asarray(query_items), np.asarray(gallery_items)
    ranks, spreads = [], []
    for start in range(0, len(q_items), chunk):
        scores = query_embeddings[start : start + chunk] @ gallery_embeddings.T
        relevant = g_items[None, :] == q_items[start : start + chunk, None]
        best = np.where(relevant, scores, -np.inf).max(axis=1)
        ranks.append(1 + (scores > best[:, None]).sum(axis=1))
        k = min(SPREAD_K, scores.shape[1])
        top = -np.partition(-scores, k - 1, axis=1)[:, :k]
        spreads.append(top.max(axis=1) - top.min(axis=1))
    return (np.concatenate(ranks) if ranks else np.zeros(0, np.int64),
            np.concatenate(spreads) if spreads else np.zeros(0))
