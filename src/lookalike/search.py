"""SearchService: image -> embedding -> nearest catalog items -> ranked results with metadata.

Used alike by the CLI and the API.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lookalike.batching import BatchFn
from lookalike.errors import EmptyCatalogError, InvalidRequestError, NotFoundError

if TYPE_CHECKING:
    from lookalike.engine import Engine

MAX_K = 1000
DELETE_SLACK = 8  # extra candidates, so items deleted between the index search and the record lookup leave k


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

    def __init__(self, engine: Engine, embed_inputs: BatchFn | None = None) -> None:
        """``embed_inputs`` (backbone inputs -> embeddings) replaces the direct backbone + head call, e.g. with
        a :class:`~lookalike.batching.MicroBatcher` that shares backbone passes between concurrent queries."""
        self.engine = engine
        self._embed_inputs = embed_inputs or engine.embed_inputs

    def _check(self, k: int) -> None:
        if not 1 <= k <= MAX_K:
            raise InvalidRequestError(f"k must be between 1 and {MAX_K}, got {k}")
        if len(self.engine.store) == 0:
            raise EmptyCatalogError("the catalog is empty: ingest images first (`lookalike ingest PATH`)")

    def embed_images(self, images: list[bytes | Path]) -> np.ndarray:
        """Embeddings of query images (raises ImageDecodeError for an unreadable one)."""
        return self._embed_inputs(self.engine.featurizer.prepare_many(images))

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
        started: float | None = None,
    ) -> list[SearchResponse]:
        self._check(k)
        started = started if started is not None else time.perf_counter()
        extra = (len(exclude) if exclude else 0) + DELETE_SLACK
        scores, ids = self.engine.store.search(vectors, k + extra, category)
        records = self.engine.catalog.get_items(int(i) for i in np.unique(ids) if i >= 0)
        took_ms = (time.perf_counter() - started) * 1000 / max(len(vectors), 1)
        responses = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            hits: list[SearchHit] = []
            for score, item in zip(row_scores.tolist(), row_ids.tolist(), strict=True):
                record = records.get(item)
                if record is None or (exclude and item in exclude) or len(hits) == k:
                    continue
                hits.append(SearchHit(record.id, len(hits) + 1, round(float(score), 6), record.category,
                                      record.path, record.item_id, record.metadata))
            responses.append(SearchResponse(hits, took_ms))
        return responses

    def similar_to_item(self, item_id: int, k: int = 5, category: str | None = None) -> SearchResponse:
        """Items most like a catalog item (itself excluded)."""
        record = self.engine.catalog.get_item(item_id)
        if record is None:
            raise NotFoundError(f"no item with id {item_id}")
        vector = self._item_vector(Path(record.path), record.content_hash)
        return self.search_vectors(vector[None, :], k, category, exclude={item_id})[0]

    def _item_vector(self, path: Path, content_hash: str) -> np.ndarray:
        cache = self.engine.featurizer.cache
        if cache is not None:
            found, features = cache.get([content_hash])
            if found[0]:
                return self.engine.embed(features)[0]
        return self.embed_images([path])[0]
