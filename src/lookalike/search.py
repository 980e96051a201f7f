"""SearchService: image -> embedding -> nearest catalog items -> ranked results with metadata.

Used alike by the CLI and the API.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lookalike.batching import BatchFn
from lookalike.catalog.repository import ItemRecord
from lookalike.duplicates import collapse
from lookalike.errors import EmptyCatalogError, InvalidRequestError, NotFoundError
from lookalike.item_vectors import item_vectors

if TYPE_CHECKING:
    from lookalike.engine import Engine

StoreSearch = Callable[[np.ndarray, int, "str | None"], tuple[np.ndarray, np.ndarray]]  # queries, k, category

MAX_K = 1000
DELETE_SLACK = 8  # extra candidates, so items deleted between the index search and the record lookup leave k
MAX_EXAMPLES = 20
DEDUPE_CANDIDATES = 4  # a deduplicated list of k is picked from the best 4k + 10 candidates


@dataclass(frozen=True)
class SearchHit:
    """One ranked result."""

    id: int
    rank: int
    score: float  # cosine similarity
    category: str | None
    path: str
    item_id: str | None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchResponse:
    """The results of one query, best first."""

    hits: list[SearchHit]
    took_ms: float


class SearchService:
    """Nearest catalog items for query images, vectors or catalog items."""

    def __init__(self, engine: Engine, embed_inputs: BatchFn | None = None,
                 search_store: StoreSearch | None = None) -> None:
        """``embed_inputs`` (backbone inputs -> embeddings) and ``search_store`` (queries, k, category -> scores,
        ids) replace the direct backbone + head and index calls, e.g. with :class:`~lookalike.batching.MicroBatcher`
        instances that share backbone passes and index scans between concurrent queries."""
        self.engine = engine
        self._embed_inputs = embed_inputs or engine.embed_inputs
        self._search_store = search_store or (lambda queries, k, category: self.engine.store.search(
            queries, k, category))

    def _check(self, k: int) -> None:
        if not 1 <= k <= MAX_K:
            raise InvalidRequestError(f"k must be between 1 and {MAX_K}, got {k}")
        if len(self.engine.store) == 0:
            raise EmptyCatalogError("the catalog is empty: ingest images first (`lookalike ingest PATH`)")

    def embed_images(self, images: list[bytes | Path], labels: Sequence[str] | None = None) -> np.ndarray:
        """Embeddings of query images; ImageDecodeError for an unreadable one, named by its label when given."""
        return self._embed_inputs(self.engine.featurizer.prepare_many(images, labels))

    def search_images(
        self, images: list[bytes | Path], k: int = 5, category: str | None = None
    ) -> list[SearchResponse]:
        """One response per image; ``took_ms`` covers decoding, embedding and search of each batch."""
        self._check(k)
        started = time.perf_counter()
        vectors = self.embed_images(images)
        return self.search_vectors(vectors, k, category, started=started)

    def search_vectors(
        self, vectors: np.ndarray, k: int = 5, category: str | None = None, *, exclude: set[int] | None = None,
        started: float | None = None, dedupe_threshold: float | None = None,
    ) -> list[SearchResponse]:
        """One response per query vector; ``dedupe_threshold`` keeps no two results that alike (still k of them
        when the candidates allow)."""
        self._check(k)
        started = started if started is not None else time.perf_counter()
        extra = (len(exclude) if exclude else 0) + DELETE_SLACK
        fetch = k * DEDUPE_CANDIDATES + 10 if dedupe_threshold is not None else k
        scores, ids = self._search_store(vectors, fetch + extra, category)
        records = self.engine.catalog.get_items(int(i) for i in np.unique(ids) if i >= 0)
        responses = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            hits: list[SearchHit] = []
            for score, item in zip(row_scores.tolist(), row_ids.tolist(), strict=True):
                record = records.get(item)
                if record is None or (exclude and item in exclude) or len(hits) == fetch:
                    continue
                hits.append(SearchHit(record.id, len(hits) + 1, round(float(score), 6), record.category,
                                      record.path, record.item_id, record.metadata))
            if dedupe_threshold is not None:
                hits = self._distinct(hits, records, dedupe_threshold, k)
            responses.append(SearchResponse(hits[:k], 0.0))
        took_ms = (time.perf_counter() - started) * 1000 / max(len(vectors), 1)
        return [SearchResponse(r.hits, took_ms) for r in responses]

    def _distinct(self, hits: list[SearchHit], records: dict[int, ItemRecord], threshold: float,
                  k: int) -> list[SearchHit]:
        """The best ``k`` hits of which no two are ``threshold``-alike, re-ranked."""
        kept, vectors = item_vectors(self.engine, [records[h.id] for h in hits])
        by_id = {h.id: h for h in hits}
        chosen = [by_id[kept[i].id] for i in collapse(vectors, threshold, k)]
        return [SearchHit(h.id, rank, h.score, h.category, h.path, h.item_id, h.metadata)
                for rank, h in enumerate(chosen, 1)]

    def similar_to_item(self, item_id: int, k: int = 5, category: str | None = None,
                        dedupe_threshold: float | None = None) -> SearchResponse:
        """Items most like a catalog item (itself excluded)."""
        vector = self.item_vectors([item_id])
        return self.search_vectors(vector, k, category, exclude={item_id}, dedupe_threshold=dedupe_threshold)[0]

    def item_vectors(self, ids: Sequence[int]) -> np.ndarray:
        """Embeddings of catalog items, in order; NotFoundError names unknown (or unreadable) ones."""
        records = self.engine.catalog.get_items(ids)
        missing = [str(i) for i in ids if i not in records]
        if missing:
            raise NotFoundError(f"no item with id {', '.join(missing[:10])}")
        kept, vectors = item_vectors(self.engine, [records[i] for i in ids])
        if len(kept) != len(ids):
            lost = sorted(set(ids) - {r.id for r in kept})
            raise NotFoundError(f"the image of item {', '.join(map(str, lost[:10]))} can no longer be read")
        return vectors

    def example_vector(self, images: Sequence[bytes | Path] = (), item_ids: Sequence[int] = (),
                       labels: Sequence[str] | None = None) -> np.ndarray:
        """The query for "like these": the normalized mean embedding of example images (``labels`` name them in
        errors) and catalog items, (1, dim)."""
        count = len(images) + len(item_ids)
        if count == 0:
            raise InvalidRequestError("give at least one example: an image file or a catalog item id")
        if count > MAX_EXAMPLES:
            raise InvalidRequestError(f"at most {MAX_EXAMPLES} examples, got {count}")
        parts = []
        if images:
            parts.append(self.embed_images(list(images), labels))
        if item_ids:
            parts.append(self.item_vectors(item_ids))
        return normalize(np.concatenate(parts).mean(axis=0, keepdims=True))


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1)


def check_category(engine: Engine, category: str | None) -> str | None:
    """The category filter to search with: None for none; InvalidRequestError naming the known categories for one
    the catalog does not have (an empty catalog passes: the search says it is empty)."""
    if not category or len(engine.store) == 0:
        return category or None
    known = engine.store.category_counts()
    if category not in known:
        names = ", ".join(sorted(known)[:20]) or "none"
        raise InvalidRequestError(f"unknown category {category!r}; known: {names}")
    return category
