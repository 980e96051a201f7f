"""The default vector store: a FAISS index (cosine = inner product on normalized vectors) with ids,
category filters, deletes, and atomic, checksummed saves.

Ids are the catalog's integer primary keys, so a dense array maps id -> category code: membership and
category filters cost no dictionary per item. Indexes that cannot delete in place (HNSW, IVF) keep tombstones,
excluded at search time and dropped at the next rebuild.

A category-filtered search is exact at every index type: an HNSW graph walk only visits the query's own
neighbourhood, so in an embedding that clusters categories it never reaches another category's items (it
returned nothing). Filtered searches therefore scan the matching items: HNSW's flat vector storage with a
selector, IVF with every list probed.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import faiss
import numpy as np

from lookalike.beacon import Watched
from lookalike.errors import IndexCorruptError, ModelMismatchError
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
    FILTER_EF_MAX,
    HNSW_EF_CONSTRUCTION,
    HNSW_EF_SEARCH,
    IVF_NPROBE,
    IndexChoice,
    choose_index,
)
from lookalike.index.faiss_compat import numpy_method
from lookalike.index.snapshot import (
    REBUILD_HINT,
    current_generation,
    pointer_beacon,
    pointer_stamp,
    read_current,
    write_generation,
)
from lookalike.threads import apply_to_current_thread

log = logging.getLogger(__name__)

ABSENT = -1
NO_CATEGORY = -2

MAX_ID = 2**40


class FaissStore:
    """FAISS-backed :class:`~lookalike.index.base.VectorStore`, persisted under ``directory``."""

    def __init__(self, directory: Path, manifest: IndexManifest, key: str = "Flat") -> None:
        self.directory = directory
        self.manifest = manifest
        self.dim = manifest.dim
        self.key = key
        self._lock = threading.RLock()
        self._index = self._new_index(key)
        self._codes = np.full(0, ABSENT, np.int16)  # id -> category code, ABSENT, or NO_CATEGORY
        self._categories: list[str] = []
        self._size: int | None = None  # len(self), derived from _codes; None after a change
        self._tombstones: set[int] = set()
        self._by_category: dict[int, np.ndarray] = {}
        self._positions: np.ndarray | None = None  # the inner index's position -> id (IndexIDMap2.id_map)
        self._position_of: np.ndarray | None = None  # id -> the inner index's position (-1: none)
        self._stamp: str | None = None  # the saved generation this store holds (see refresh)
        self._beacon = pointer_beacon(directory)
        self._saved_stamp = Watched(lambda: pointer_stamp(directory), self._beacon)  # what refresh compares with
        self.dirty = False

    # --- building -----------------------------------------------------------------------------

    def _new_index(self, key: str) -> faiss.IndexIDMap2:
        inner = faiss.index_factory(self.dim, key, faiss.METRIC_INNER_PRODUCT)
        if isinstance(inner, faiss.IndexHNSW):
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        return faiss.IndexIDMap2(inner)

    @property
    def _removable(self) -> bool:
        """Only a flat index deletes in place. HNSW cannot; ``IndexIDMap2.remove_ids`` over IVF breaks the id map
        (IVF keeps its stored positions while the map is compacted: FAISS aborts on the next removal)."""
        return isinstance(faiss.downcast_index(self._index.index), faiss.IndexFlat)

    def __len__(self) -> int:
        """Items present (asked on every search, so counted once per change rather than per call)."""
        if self._size is None:
            self._size = int(np.count_nonzero(self._codes != ABSENT))
        return self._size

    def ids(self) -> np.ndarray:
        return np.flatnonzero(self._codes != ABSENT).astype(np.int64)

    def _code(self, category: str | None) -> int:
        if category is None:
            return NO_CATEGORY
        if category not in self._categories:
            self._categories.append(category)
        return self._categories.index(category)

    def add(self, ids: np.ndarray, vectors: np.ndarray, categories: list[str | None]) -> None:
        ids, vectors = checked_batch(ids, vectors, categories, self.dim, MAX_ID)
        if len(ids) == 0:
            return
        with self._lock:
            self._grow(int(ids.max()) + 1)
            present = ids[self._codes[ids] != ABSENT]
            if len(present) or self._tombstones.intersection(ids.tolist()):
                self.remove(present)
                if not self._removable:
                    self._rebuild(self.key, exclude=set(ids.tolist()))
            if not self._index.is_trained:
                self._index.train(vectors)
            self._index.add_with_ids(vectors, ids)
            self._codes[ids] = [self._code(c) for c in categories]
            self._changed()
            self._size = None
            self.dirty = True

    def _changed(self) -> None:
        self._by_category.clear()
        self._positions = None
        self._position_of = None

    def _grow(self, size: int) -> None:
        if size > len(self._codes):
            grown = np.full(max(size, 2 * len(self._codes), 1024), ABSENT, np.int16)
            grown[: len(self._codes)] = self._codes
            self._codes = grown

    def remove(self, ids: np.ndarray) -> int:
        ids = np.asarray(ids, np.int64)
        with self._lock:
            ids = ids[(ids >= 0) & (ids < len(self._codes))]
            ids = ids[self._codes[ids] != ABSENT]
            if len(ids) == 0:
                return 0
            if self._removable:
                self._index.remove_ids(faiss.IDSelectorBatch(ids))
            else:
                self._tombstones.update(ids.tolist())
            self._codes[ids] = ABSENT
            self._changed()
            self._size = None
            self.dirty = True
            return len(ids)

    def _live_vectors(self, exclude: set[int] = frozenset()) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[assignment]
        """(ids, vectors) of every live entry, reconstructed from the index."""
        n = self._index.ntotal
        stored_ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        inner = faiss.downcast_index(self._index.index)
        if isinstance(inner, faiss.IndexIVF):
            inner.make_direct_map()  # IVF reconstructs by position only through its direct map
        vectors = numpy_method(inner, "reconstruct_n")(0, n) if n else np.zeros((0, self.dim), np.float32)
        keep = np.array([i not in self._tombstones and i not in exclude for i in stored_ids.tolist()], bool)
        return stored_ids[keep] if n else stored_ids, vectors[keep] if n else vectors

    def _rebuild(self, key: str, exclude: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        ids, vectors = self._live_vectors(exclude)
        index = self._new_index(key)
        if not index.is_trained and len(vectors):
            index.train(vectors)
        if len(ids):
            index.add_with_ids(vectors, ids)
        self._index, self.key = index, key
        self._tombstones = set()
        self._changed()
        self.dirty = True

    def optimize(self, memory_budget_bytes: int) -> IndexChoice:
        """Switch to the index type :func:`choose_index` picks for the current size (and purge tombstones)."""
        with self._lock:
            choice = choose_index(len(self), self.dim, memory_budget_bytes)
            if choice.key != self.key or len(self._tombstones) > 0.1 * max(len(self), 1):
                log.info("rebuilding index as %s: %s", choice.key, choice.reason)
                self._rebuild(choice.key)
            return choice

    # --- searching ----------------------------------------------------------------------------

    def _params(self, k: int, selector: faiss.IDSelector | None, exhaustive: bool) -> faiss.SearchParameters | None:
        inner = faiss.downcast_index(self._index.index)
        if isinstance(inner, faiss.IndexHNSW):
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            params.efSearch = max(HNSW_EF_SEARCH, 2 * k)
        elif isinstance(inner, faiss.IndexIVF):
            params = faiss.SearchParametersIVF()
            params.nprobe = inner.nlist if exhaustive else min(IVF_NPROBE, inner.nlist)
        elif selector is None:
            return None
        else:
            params = faiss.SearchParameters()
        if selector is not None:
            params.sel = selector
        return params

    def _selector(self, category: str | None) -> tuple[bool, faiss.IDSelector | None]:
        """``(anything can match, selector)`` for a category filter and the tombstones.
        Call with the lock held, and keep the selector referenced until the search is done."""
        if category is not None:
            allowed = self._category_ids(category)
            return bool(len(allowed)) and self._index.ntotal > 0, faiss.IDSelectorBatch(allowed)
        if self._tombstones:
            return True, faiss.IDSelectorNot(faiss.IDSelectorBatch(np.fromiter(self._tombstones, np.int64)))
        return self._index.ntotal > 0, None

    def search(
        self, queries: np.ndarray, k: int, category: str | None = None, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = checked_queries(queries, k, self.dim)
        empty = (np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64))
        with self._lock:
            if allowed is not None:
                ids = self._live(allowed, category)
                if not len(ids) or not len(queries):
                    return empty
                apply_to_current_thread()
                return self._filtered(queries, k, ids)
            possible, selector = self._selector(category)
            if not possible or len(queries) == 0:
                return empty
            apply_to_current_thread()
            inner = faiss.downcast_index(self._index.index)
            if selector is not None and category is not None and isinstance(inner, faiss.IndexHNSW):
                return self._scan_storage(inner, queries, k, selector)
            params = self._params(k, selector, exhaustive=category is not None)
            scores, ids = numpy_method(self._index, "search")(queries, k, params=params)
        return scores, ids

    def _live(self, allowed: np.ndarray, category: str | None) -> np.ndarray:
        """The allowed ids that are in the index (and of the category, given one), sorted."""
        ids = np.asarray(allowed, np.int64)
        if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():  # a filter's answer is sorted already
            ids = np.unique(ids)
        ids = ids[(ids >= 0) & (ids < len(self._codes))]
        codes = self._codes[ids]
        if category is None:
            return ids[codes != ABSENT]
        return ids[codes == self._categories.index(category)] if category in self._categories else ids[:0]

    def _filtered(self, queries: np.ndarray, k: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The true top k among ``ids`` (live, sorted), planned by how many they are: few are compared one by one;
        many are searched in the index with a selector (HNSW's graph with a search list wide enough for their
        share; IVF with every list), and a query that this leaves short of k is answered one by one after all."""
        inner = faiss.downcast_index(self._index.index)
        if len(ids) <= max(EXACT_FILTER_MIN, EXACT_FILTER_SHARE * len(self)) or isinstance(inner, faiss.IndexFlat):
            return self._compare(queries, k, ids)
        bitmap = np.zeros(len(self._codes), bool)
        bitmap[ids] = True
        packed = np.packbits(bitmap, bitorder="little")
        selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(packed))
        params = self._params(k, selector, exhaustive=True)
        if isinstance(params, faiss.SearchParametersHNSW):  # type: ignore[attr-defined]
            share = len(ids) / max(len(self), 1)
            params.efSearch = int(min(max(HNSW_EF_SEARCH, 2 * k, FILTER_EF_FACTOR * k / share), FILTER_EF_MAX))
        scores, found = numpy_method(self._index, "search")(queries, k, params=params)
        short = (found[:, -1] < 0) & (len(ids) >= k)
        if short.any():
            scores[short], found[short] = self._compare(queries[short], k, ids)
        return scores, found

    def _compare(self, queries: np.ndarray, k: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top k among ``ids``: their stored vectors against every query (IVF-PQ's are its codes' vectors)."""
        return top_k_among(queries, self._stored_vectors(ids), ids, k)

    def _stored_vectors(self, ids: np.ndarray) -> np.ndarray:
        """The vectors of live ids: read in place from a flat storage (Flat, HNSW's), else reconstructed."""
        inner = faiss.downcast_index(self._index.index)
        storage = faiss.downcast_index(inner.storage) if isinstance(inner, faiss.IndexHNSW) else inner
        if isinstance(storage, faiss.IndexFlat):
            if self._position_of is None:
                stored = faiss.vector_to_array(self._index.id_map).astype(np.int64)
                self._position_of = np.full(len(self._codes), -1, np.int64)
                self._position_of[stored] = np.arange(len(stored))
            flat = faiss.rev_swig_ptr(storage.get_xb(), storage.ntotal * self.dim).reshape(storage.ntotal, self.dim)
            return flat[self._position_of[ids]]
        if isinstance(inner, faiss.IndexIVF) and inner.direct_map.no():
            inner.make_direct_map()  # IVF reconstructs by position only through its direct map
        return numpy_method(self._index, "reconstruct_batch")(ids)

    def _scan_storage(self, inner: faiss.IndexHNSW, queries: np.ndarray, k: int,
                      selector: faiss.IDSelector) -> tuple[np.ndarray, np.ndarray]:
        """Exact search of the selected ids in an HNSW index's flat vector storage, bypassing the graph."""
        params = faiss.SearchParameters()
        # storage position -> id -> selector; the id map is passed as FAISS's own vector (the stubs omit that form)
        translated = faiss.IDSelectorTranslated(self._index.id_map, selector)  # type: ignore[arg-type]
        params.sel = translated
        scores, positions = numpy_method(faiss.downcast_index(inner.storage), "search")(queries, k, params=params)
        if self._positions is None:
            self._positions = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        return scores, np.where(positions >= 0, self._positions[np.maximum(positions, 0)], -1)

    def range_search(
        self, queries: np.ndarray, min_score: float, category: str | None = None, limit: int = RANGE_LIMIT
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        return range_by_top_k(lambda q, k: self.search(q, k, category), queries, min_score, limit)

    def _category_ids(self, category: str) -> np.ndarray:
        if category not in self._categories:
            return np.zeros(0, np.int64)
        code = self._categories.index(category)
        if code not in self._by_category:
            self._by_category[code] = np.flatnonzero(self._codes == code).astype(np.int64)
        return self._by_category[code]

    def category_counts(self) -> dict[str, int]:
        with self._lock:
            return {name: int(np.count_nonzero(self._codes == i)) for i, name in enumerate(self._categories)}

    # --- persistence --------------------------------------------------------------------------

    def save(self) -> None:
        with self._lock:
            index = self._index
            codes = self._codes
            tombstones = np.fromiter(sorted(self._tombstones), np.int64, len(self._tombstones))
            write_generation(
                self.directory,
                {
                    "index.faiss": lambda p: faiss.write_index(index, str(p)),
                    "codes.npy": lambda p: np.save(p, codes),
                    "tombstones.npy": lambda p: np.save(p, tombstones),
                },
                {
                    "format": FORMAT_VERSION,
                    **self.manifest.to_dict(),
                    "index_key": self.key,
                    "count": len(self),
                    "categories": self._categories,
                },
            )
            self._stamp = pointer_stamp(self.directory)
            self.dirty = False

    def refresh(self) -> bool:
        """Reload when another process (a server worker, `lookalike ingest`) saved a newer generation. A failed
        reload (say, the generation was replaced again while being read) keeps what is loaded, for the next call."""
        stamp = self._saved_stamp()
        if stamp is None or stamp == self._stamp or self.dirty:
            return False
        with self._lock:
            if self.dirty or pointer_stamp(self.directory) == self._stamp:
                return False
            try:
                saved = FaissStore.load(self.directory, self.manifest)
            except (IndexCorruptError, ModelMismatchError) as exc:
                log.warning("kept the loaded index; cannot reload %s: %s", self.directory, exc)
                return False
            self._index, self._codes, self._tombstones = saved._index, saved._codes, saved._tombstones
            self._categories, self.key, self._stamp = saved._categories, saved.key, saved._stamp
            self._changed()
            self._size = None
            return True

    @classmethod
    def exists(cls, directory: Path) -> bool:
        return current_generation(directory) is not None

    @classmethod
    def load(cls, directory: Path, expected: IndexManifest) -> FaissStore:
        """Load the current generation; refuses one built by another model, or corrupt files."""
        stamp = pointer_stamp(directory)  # before reading: a save meanwhile makes the next refresh reload
        current = read_current(directory)
        if current is None:
            raise IndexCorruptError(f"no index saved in {directory}")
        folder, data = current
        if data.get("format") != FORMAT_VERSION:
            raise IndexCorruptError(f"index in {folder} has unknown format {data.get('format')}")
        try:
            fields = {f: data[f] for f in IndexManifest.__dataclass_fields__ if f in data}
            IndexManifest(**fields).check_compatible(expected, str(directory))
            store = cls(directory, expected, str(data["index_key"]))
            store._index = faiss.read_index(str(folder / "index.faiss"))  # type: ignore[assignment]
            store._codes = np.load(folder / "codes.npy")
            store._tombstones = set(np.load(folder / "tombstones.npy").tolist())
            store._categories = [str(c) for c in data.get("categories", [])]
        except (RuntimeError, OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(f"cannot read index in {folder}: {exc}; {REBUILD_HINT}") from None
        if store._index.d != expected.dim or len(store) != data.get("count"):
            raise IndexCorruptError(f"index in {folder} disagrees with its manifest: {REBUILD_HINT}")
        store._stamp = stamp
        return store

    def close(self) -> None:
        """Unmaps the pointer's beacon; the index lives in this process."""
        self._beacon.close()

    def describe(self) -> dict[str, object]:
        return {"type": self.key, "count": len(self), "dim": self.dim, "tombstones": len(self._tombstones),
                "directory": str(self.directory), **self.manifest.to_dict()}
