"""A vector store on Milvus: Milvus Lite (a local ``.db`` file, in-process) or a Milvus server or cluster by URL.

One collection holds ``(id INT64 primary key, vector FLOAT_VECTOR, category VARCHAR nullable)`` with a COSINE
index (HNSW by default); category filters are Milvus boolean expressions on the scalar field. The index
manifest is a collection property, checked on open like FaissStore's sidecar. Writes are durable when they
return (Milvus logs them); ``save`` flushes them into sealed, indexed segments once enough have accumulated,
and ``close`` flushes the rest. The store keeps a map id -> category, loaded on open, so that ``len``, ``ids``
and category counts need no round trip; like an in-process FAISS index, it sees other processes' additions to
those counts when it is opened again (their writes are searchable at once).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pymilvus import DataType, MilvusClient, MilvusException

from lookalike.errors import IndexCorruptError, VectorStoreError
from lookalike.index import faiss_compat
from lookalike.index.base import (
    FORMAT_VERSION,
    RANGE_LIMIT,
    IndexManifest,
    checked_batch,
    checked_queries,
    range_by_top_k,
    top_k_among,
)
from lookalike.index.choose import (
    EXACT_FILTER_MIN,
    EXACT_FILTER_SHARE,
    FILTER_EF_FACTOR,
    HNSW_EF_CONSTRUCTION,
    HNSW_EF_SEARCH,
    HNSW_M,
    IVF_NPROBE,
    IndexChoice,
    flat_bytes_per_item,
    hnsw_bytes_per_item,
)
from lookalike.index.milvus_config import MilvusConfig

log = logging.getLogger(__name__)

MANIFEST_PROPERTY = "lookalike.manifest"
CATEGORY_MAX_BYTES = 1024
IVF_NLIST = 1024
WRITE_BYTES = 16 * 2**20  # vectors per upsert request, well under gRPC's 64 MB message limit
ITERATOR_BATCH = 16384  # Milvus's largest query page
MILVUS_MAX_LIMIT = 16_384  # the largest top-k Milvus accepts
MILVUS_FILTER_EF_MAX = 512  # Milvus Lite returned fewer than k for a filter of 10 items with ef 4,096
FETCH_BATCH = 2048  # vectors fetched by id at a time
FLUSH_ROWS = 16384  # save() seals segments once this many rows changed; smaller changes stay in Milvus's log
INDEX_TYPES = ("HNSW", "FLAT", "IVF_FLAT")
T = TypeVar("T")


def category_filter(category: str) -> str:
    """A Milvus expression matching one category exactly; the name is a JSON-escaped string literal."""
    return f"category == {json.dumps(category, ensure_ascii=False)}"


class MilvusStore:
    """Milvus-backed :class:`~lookalike.index.base.VectorStore`; open it with :meth:`open`."""

    def __init__(self, config: MilvusConfig, manifest: IndexManifest, client: MilvusClient) -> None:
        if config.index_type not in INDEX_TYPES:
            raise ValueError(f"unknown Milvus index type {config.index_type!r}; choose one of {INDEX_TYPES}")
        self.config = config
        self.manifest = manifest
        self.dim = manifest.dim
        self._client = client
        self._name = config.collection
        self._lock = threading.RLock()
        self._category_of: dict[int, str | None] = {}
        self._counts: Counter[str] = Counter()
        self._unflushed = 0
        self.dirty = False

    # --- opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, config: MilvusConfig, manifest: IndexManifest, fresh: bool = False) -> MilvusStore:
        """Connect and open the collection (created when missing; dropped and created again when ``fresh``).

        Raises ModelMismatchError when the collection was built by another model, IndexCorruptError when it
        was not made by Lookalike, VectorStoreError when Milvus cannot be reached.
        """
        if config.is_lite:
            Path(config.uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
        where = f"connect to {config.safe_uri}"
        if config.is_lite:
            where += " (a Milvus Lite file serves one process at a time: is another lookalike using it?)"
        client = _call(lambda: MilvusClient(uri=config.uri, token=config.token or ""), where)
        store = cls(config, manifest, client)
        try:
            exists = store._guard(lambda: client.has_collection(config.collection))
            if exists and fresh:
                store._guard(lambda: client.drop_collection(config.collection))
            if exists and not fresh:
                store._check_manifest()
                store._guard(lambda: client.load_collection(config.collection))
                store._load_membership()
            else:
                store._create()
        except BaseException:
            client.close()
            raise
        return store

    @property
    def where(self) -> str:
        return f"Milvus collection {self._name!r} at {self.config.safe_uri}"

    def _guard(self, call: Callable[[], T]) -> T:
        return _call(call, self.where)

    def _create(self) -> None:
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("category", DataType.VARCHAR, max_length=CATEGORY_MAX_BYTES, nullable=True)
        manifest = json.dumps({"format": FORMAT_VERSION, **self.manifest.to_dict()})
        self._guard(lambda: self._client.create_collection(
            self._name, schema=schema, consistency_level="Strong", properties={MANIFEST_PROPERTY: manifest}))
        self._build_index()
        log.info("created %s (%s, dim %d)", self.where, self.config.index_type, self.dim)

    def _build_index(self) -> None:
        """Create the vector index and load the collection; ``sync=False`` skips a wait that needs a timestamp
        service Milvus Lite lacks (load waits for the index anyway)."""
        self._guard(lambda: self._client.create_index(self._name, self._index_params(), sync=False))
        self._guard(lambda: self._client.load_collection(self._name))

    def _index_params(self) -> Any:
        params = self._client.prepare_index_params()
        build = {"HNSW": {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION}, "IVF_FLAT": {"nlist": IVF_NLIST}}
        params.add_index(field_name="vector", index_name="vector", index_type=self.config.index_type,
                         metric_type="COSINE", params=build.get(self.config.index_type, {}))
        return params

    def _check_manifest(self) -> None:
        description = self._guard(lambda: self._client.describe_collection(self._name))
        raw = (description.get("properties") or {}).get(MANIFEST_PROPERTY)
        if raw is None:
            raise IndexCorruptError(f"{self.where} was not made by Lookalike (no manifest); "
                                    "set LOOKALIKE_MILVUS_COLLECTION to another name")
        try:
            data = json.loads(raw)
            fields = {f: data[f] for f in IndexManifest.__dataclass_fields__ if f in data}
            found = IndexManifest(**fields)
        except (ValueError, TypeError) as exc:
            raise IndexCorruptError(f"{self.where} has an unreadable manifest: {exc}") from exc
        if data.get("format") != FORMAT_VERSION:
            raise IndexCorruptError(f"{self.where} has unknown format {data.get('format')}")
        found.check_compatible(self.manifest, self.where)

    def _load_membership(self) -> None:
        for row in self._all_rows():
            self._category_of[int(row["id"])] = row.get("category")
        self._counts = Counter(c for c in self._category_of.values() if c is not None)

    def _all_rows(self) -> Iterator[dict[str, Any]]:
        """Every (id, category): one query on Milvus Lite (which cannot stamp query iterators), else pages."""
        fields = ["id", "category"]
        if self.config.is_lite:
            yield from self._guard(lambda: self._client.query(self._name, filter="id >= 0", output_fields=fields))
            return
        iterator = self._guard(lambda: self._client.query_iterator(
            self._name, batch_size=ITERATOR_BATCH, filter="", output_fields=fields))
        try:
            while rows := self._guard(iterator.next):
                yield from rows
        finally:
            iterator.close()

    # --- membership ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._category_of)

    def ids(self) -> np.ndarray:
        with self._lock:
            return np.array(sorted(self._category_of), np.int64)

    def category_counts(self) -> dict[str, int]:
        with self._lock:
            return {name: n for name, n in self._counts.items() if n}

    def _forget(self, ids: list[int]) -> None:
        for item in ids:
            category = self._category_of.pop(item, None)
            if category is not None:
                self._counts[category] -= 1

    # --- writing ------------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray, categories: list[str | None]) -> None:
        ids, vectors = checked_batch(ids, vectors, categories, self.dim)
        if len(ids) == 0:
            return
        if any(c is not None and len(c.encode()) > CATEGORY_MAX_BYTES for c in categories):
            raise ValueError(f"a category name is longer than {CATEGORY_MAX_BYTES} bytes")
        step = max(1, WRITE_BYTES // (4 * self.dim))
        with self._lock:
            listed = ids.tolist()
            present = np.array([i in self._category_of for i in listed], bool)
            for write, chosen in ((self._client.insert, ~present), (self._client.upsert, present)):  # insert: 2x faster
                rows = [{"id": i, "vector": v, "category": c} for i, v, c, keep in zip(
                    listed, vectors, categories, chosen, strict=True) if keep]
                for start in range(0, len(rows), step):
                    self._guard(lambda w=write, r=rows[start : start + step]: w(self._name, r))  # type: ignore[misc]
            self._forget(listed)
            for item, category in zip(listed, categories, strict=True):
                self._category_of[item] = category
                if category is not None:
                    self._counts[category] += 1
            self._unflushed += len(listed)
            self.dirty = True

    def remove(self, ids: np.ndarray) -> int:
        with self._lock:
            present = [i for i in np.unique(np.asarray(ids, np.int64)).tolist() if i in self._category_of]
            if not present:
                return 0
            self._guard(lambda: self._client.delete(self._name, ids=present))
            self._forget(present)
            self._unflushed += len(present)
            self.dirty = True
            return len(present)

    def save(self, force: bool = False) -> None:
        with self._lock:
            if self._unflushed and (force or self._unflushed >= FLUSH_ROWS):
                self._guard(lambda: self._client.flush(self._name))
                self._unflushed = 0
            self.dirty = False

    def refresh(self) -> bool:
        """Searches go to Milvus itself; only this process's id and category counts could lag behind another
        writer's (see docs/SCALING.md)."""
        return False

    def optimize(self, memory_budget_bytes: int) -> IndexChoice:
        """Milvus builds its index per segment as data arrives; this rebuilds it only when the configured
        type differs from the collection's (the memory budget is the Milvus server's to manage)."""
        with self._lock:
            current = self._guard(lambda: self._client.describe_index(self._name, "vector")).get("index_type")
            if current != self.config.index_type:
                log.info("rebuilding the index of %s as %s (was %s)", self.where, self.config.index_type, current)
                self._guard(lambda: self._client.release_collection(self._name))
                self._guard(lambda: self._client.drop_index(self._name, "vector"))
                self._build_index()
            return IndexChoice(f"milvus:{self.config.index_type}", self.bytes_per_item,
                               f"{len(self)} items in {self.where}")

    @property
    def bytes_per_item(self) -> float:
        """Estimated index memory per item on the Milvus query node (vector, graph links, id)."""
        return hnsw_bytes_per_item(self.dim) if self.config.index_type == "HNSW" else flat_bytes_per_item(self.dim)

    # --- searching ----------------------------------------------------------------------------

    def _search_params(self, k: int, share: float = 1.0) -> dict[str, Any]:
        """``share``: the part of the collection a filter lets through (HNSW's search list widens for a small one,
        as FAISS's does)."""
        if self.config.index_type == "HNSW":
            ef = max(HNSW_EF_SEARCH, 2 * k, int(min(FILTER_EF_FACTOR * k / max(share, 1e-9), MILVUS_FILTER_EF_MAX)))
            return {"metric_type": "COSINE", "params": {"ef": ef}}
        if self.config.index_type == "IVF_FLAT":
            return {"metric_type": "COSINE", "params": {"nprobe": IVF_NPROBE}}
        return {"metric_type": "COSINE", "params": {}}

    def search(
        self, queries: np.ndarray, k: int, category: str | None = None, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = checked_queries(queries, k, self.dim)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        ids = np.full((len(queries), k), -1, np.int64)
        faiss_compat.repair()  # Milvus Lite searches with FAISS in this process
        with self._lock:
            if not self._category_of or (category is not None and not self._counts.get(category)):
                return scores, ids
            if allowed is not None:
                allowed = np.array([i for i in np.unique(allowed).tolist() if i in self._category_of
                                    and (category is None or self._category_of[i] == category)], np.int64)
                if not len(allowed):
                    return scores, ids
        if allowed is not None and len(allowed) <= max(EXACT_FILTER_MIN, EXACT_FILTER_SHARE * len(self)):
            return top_k_among(queries, self._vectors(allowed), allowed, k)  # few: compared one by one
        conditions = [category_filter(category)] if category is not None else []
        if allowed is not None:
            conditions.append(f"id in [{','.join(map(str, allowed.tolist()))}]")
        results = self._guard(lambda: self._client.search(
            self._name, data=list(queries), limit=min(k, MILVUS_MAX_LIMIT), anns_field="vector", output_fields=["id"],
            filter=" and ".join(conditions),
            search_params=self._search_params(k, len(allowed) / max(len(self), 1) if allowed is not None else 1.0)))
        for row, hits in enumerate(results):
            for column, hit in enumerate(hits[:k]):
                ids[row, column] = int(hit["id"])
                scores[row, column] = float(hit["distance"])
        return scores, ids

    def _vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of these ids, in order (fetched by primary key, a batch at a time)."""
        out = np.zeros((len(ids), self.dim), np.float32)
        where = {int(i): n for n, i in enumerate(ids.tolist())}
        for start in range(0, len(ids), FETCH_BATCH):
            batch: list[int] = ids[start : start + FETCH_BATCH].tolist()

            def fetch(batch: list[int] = batch) -> list[dict[str, Any]]:
                return list(self._client.get(self._name, ids=batch, output_fields=["vector"]))

            for row in self._guard(fetch):
                out[where[int(row["id"])]] = np.asarray(row["vector"], np.float32)
        return out

    def range_search(
        self, queries: np.ndarray, min_score: float, category: str | None = None, limit: int = RANGE_LIMIT
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        return range_by_top_k(lambda q, k: self.search(q, k, category), queries, min_score,
                              min(limit, MILVUS_MAX_LIMIT))

    def describe(self) -> dict[str, object]:
        return {"type": f"milvus:{self.config.index_type}", "count": len(self), "dim": self.dim,
                "uri": self.config.safe_uri, "collection": self._name, **self.manifest.to_dict()}

    def close(self) -> None:
        try:
            self.save(force=True)
        finally:
            self._client.close()


def _call(call: Callable[[], T], where: str) -> T:
    """Run a Milvus client call, turning its errors into VectorStoreError."""
    try:
        return call()
    except MilvusException as exc:
        raise VectorStoreError(f"{where}: {exc.message}") from exc
