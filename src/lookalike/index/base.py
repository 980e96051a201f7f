"""The vector store interface every implementation (FAISS, Milvus) provides."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lookalike.errors import ModelMismatchError
from lookalike.index.choose import IndexChoice

FORMAT_VERSION = 1
RANGE_LIMIT = 1024  # the most neighbours a range search returns per query
RANGE_FIRST_K = 64  # a range search starts with this top-k and widens it where every hit still qualifies

TopK = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]  # (queries, k) -> (scores, ids), best first


@dataclass(frozen=True)
class IndexManifest:
    """What built a persisted index; written beside it, checked on load."""

    model_version: str
    backbone: str
    head_checksum: str
    dim: int
    metric: str = "inner_product"
    normalized: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check_compatible(self, expected: IndexManifest, where: str) -> None:
        """Refuse an index built by another model, naming both."""
        if self.model_version != expected.model_version or self.dim != expected.dim:
            raise ModelMismatchError(
                f"the index at {where} was built with model {self.model_version} (dim {self.dim}), "
                f"but the loaded model is {expected.model_version} (dim {expected.dim}); "
                "rebuild it with `lookalike ingest --reindex`"
            )


def checked_batch(ids: np.ndarray, vectors: np.ndarray, categories: list[str | None], dim: int,
                  max_id: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """An add's ids and vectors as int64 and contiguous float32; ValueError for a malformed batch."""
    ids = np.asarray(ids, np.int64)
    vectors = np.ascontiguousarray(vectors, np.float32)
    if vectors.shape != (len(ids), dim) or len(categories) != len(ids):
        raise ValueError(f"expected {len(ids)} vectors of dim {dim} and as many categories")
    if len(ids) and (ids.min() < 0 or (max_id is not None and ids.max() >= max_id) or len(np.unique(ids)) != len(ids)):
        raise ValueError("ids must be unique, non-negative catalog ids")
    return ids, vectors


@runtime_checkable
class VectorStore(Protocol):
    """Cosine-similarity search over L2-normalized vectors with int64 ids and a category per id."""

    dim: int
    dirty: bool  # changed since the last save

    def __len__(self) -> int: ...

    def add(self, ids: np.ndarray, vectors: np.ndarray, categories: list[str | None]) -> None:
        """Insert vectors; an id already present is replaced."""

    def remove(self, ids: np.ndarray) -> int:
        """Delete ids; returns how many were present."""

    def search(
        self, queries: np.ndarray, k: int, category: str | None = None, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each (n_queries, k), best first; missing slots have id -1. ``category`` and
        ``allowed`` (the ids a filter matched) keep the true top k among the items that qualify."""

    def range_search(
        self, queries: np.ndarray, min_score: float, category: str | None = None, limit: int = RANGE_LIMIT
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each query, ``(scores, ids)`` of the stored vectors scoring at least ``min_score``, best first, at
        most ``limit`` of them (the best): :func:`range_by_top_k` over the store's own search."""

    def ids(self) -> np.ndarray:
        """All ids present."""

    def save(self) -> None:
        """Persist durably and atomically (a crash leaves the previous version loadable)."""

    def refresh(self) -> bool:
        """Pick up what another process saved since this one last loaded or saved; True when it did.

        Cheap when nothing changed (FAISS: one ``stat``); a store shared through a server (Milvus) has nothing to
        pick up. Unsaved changes of this process are never discarded."""

    def optimize(self, memory_budget_bytes: int) -> IndexChoice:
        """Bring the index to the type that suits its size (after a bulk load); returns what it is now."""

    def category_counts(self) -> dict[str, int]:
        """Items per category (items without a category are not counted)."""

    def describe(self) -> dict[str, object]:
        """Type, size and manifest, for ``info`` and ``/api/stats``."""

    def close(self) -> None:
        """Release connections (the data stay)."""


def top_k_among(queries: np.ndarray, vectors: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``(scores, ids)`` of the best k of ``ids`` (their ``vectors``) for each query, padded with -1."""
    similarity = queries @ vectors.T
    take = min(k, len(ids))
    scores = np.full((len(queries), k), -np.inf, np.float32)
    found = np.full((len(queries), k), -1, np.int64)
    if take == 0:
        return scores, found
    top = np.argpartition(-similarity, take - 1, axis=1)[:, :take]
    order = np.take_along_axis(-similarity, top, axis=1).argsort(axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    scores[:, :take] = np.take_along_axis(similarity, top, axis=1)
    found[:, :take] = ids[top]
    return scores, found


def checked_queries(queries: np.ndarray, k: int, dim: int) -> np.ndarray:
    """Queries as contiguous float32 rows; ValueError for the wrong dimension or a k below 1."""
    queries = np.ascontiguousarray(np.atleast_2d(queries), np.float32)
    if queries.shape[1] != dim:
        raise ValueError(f"query dimension {queries.shape[1]} != index dimension {dim}")
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    return queries


def range_by_top_k(top_k: TopK, queries: np.ndarray, min_score: float, limit: int = RANGE_LIMIT,
                   first_k: int = RANGE_FIRST_K) -> list[tuple[np.ndarray, np.ndarray]]:
    """A range search as top-k searches: k grows fourfold, up to ``limit``, for the queries whose k-th hit still
    scores at least ``min_score``. Native range searches are avoided: their result size is unbounded (a low
    threshold on a large catalog asks for every pair), and FAISS 1.15's HNSW one aborts the process on large
    batches."""
    if limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    queries = np.atleast_2d(queries)
    rows: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0, np.float32), np.zeros(0, np.int64))] * len(queries)
    pending, k = np.arange(len(queries)), min(first_k, limit)
    while len(pending):
        scores, ids = top_k(queries[pending], k)
        widen = (ids[:, -1] >= 0) & (scores[:, -1] >= min_score) & (k < limit)
        for row, row_scores, row_ids in zip(pending[~widen], scores[~widen], ids[~widen], strict=True):
            keep = (row_ids >= 0) & (row_scores >= min_score)
            rows[row] = (row_scores[keep].astype(np.float32), row_ids[keep].astype(np.int64))
        pending, k = pending[widen], min(4 * k, limit)
    return rows
