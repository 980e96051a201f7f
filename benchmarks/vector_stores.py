"""FAISS and Milvus Lite side by side on one catalog: query latency, filtered-query latency, recall@10.

Filtered queries are timed twice: filtered to the query's own category, and to another category (the hard case
for a graph index in an embedding that clusters categories: the walk never reaches the other category), each with
recall@10 against exact search of the matching items.

    python benchmarks/vector_stores.py --home $LOOKALIKE_HOME --queries 300

Takes the embeddings of every catalog item in HOME from its feature cache (no image is decoded), loads them into
FAISS (Flat, HNSW32) in memory and into Milvus Lite (FLAT, HNSW) collections in a temporary file, then runs the
same single-vector queries (held-out catalog vectors, k=10) against each, interleaved so that the machine's noise
falls on all alike. Prints medians and p95 in milliseconds and recall@10 against exact search, as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from lookalike.bootstrap import load_extractor, load_head
from lookalike.catalog.repository import Catalog
from lookalike.config import Settings
from lookalike.embedding.feature_cache import FeatureCache
from lookalike.engine import index_manifest
from lookalike.index.base import VectorStore
from lookalike.index.faiss_store import FaissStore
from lookalike.index.milvus_store import MilvusStore
from lookalike.index.open_store import MilvusConfig


def catalog_vectors(settings: Settings) -> tuple[np.ndarray, np.ndarray, list[str | None], object]:
    extractor = load_extractor(settings)
    head = load_head(settings.heads_dir, extractor)
    catalog = Catalog(settings.resolved_database_url)
    records = list(catalog.iter_items())
    cache = FeatureCache(settings.features_dir, extractor.fingerprint, extractor.num_features)
    found, features = cache.get([r.content_hash for r in records])
    kept = [r for r, ok in zip(records, found, strict=True) if ok]
    ids = np.array([r.id for r in kept], np.int64)
    return ids, head(features[found]), [r.category for r in kept], index_manifest(extractor, head)


def timed(store: VectorStore, query: np.ndarray, category: str | None) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    _, ids = store.search(query, 10, category)
    return (time.perf_counter() - started) * 1000, ids[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    settings = Settings(home=args.home, _env_file=None)  # type: ignore[call-arg]
    ids, vectors, categories, manifest = catalog_vectors(settings)
    rng = np.random.default_rng(0)
    held_out = rng.choice(len(ids), size=args.queries, replace=False)
    keep = np.setdiff1d(np.arange(len(ids)), held_out)
    queries, query_categories = vectors[held_out], [categories[i] for i in held_out]

    stores: dict[str, VectorStore] = {}
    build_seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in {
            "faiss-Flat": lambda: FaissStore(Path(tmp) / "flat", manifest, "Flat"),
            "faiss-HNSW32": lambda: FaissStore(Path(tmp) / "hnsw", manifest, "HNSW32"),
            "milvus-lite-FLAT": lambda: MilvusStore.open(
                MilvusConfig(str(Path(tmp) / "flat.db"), collection="flat", index_type="FLAT"), manifest),
            "milvus-lite-HNSW": lambda: MilvusStore.open(
                MilvusConfig(str(Path(tmp) / "hnsw.db"), collection="hnsw", index_type="HNSW"), manifest),
        }.items():
            started = time.perf_counter()
            store = make()  # type: ignore[no-untyped-call]
            for start in range(0, len(keep), 4096):
                chunk = keep[start : start + 4096]
                store.add(ids[chunk], vectors[chunk], [categories[i] for i in chunk])
            if isinstance(store, MilvusStore):
                store.save(force=True)  # sealed, indexed segments, as after an ingest
            else:
                store.save()
            build_seconds[name] = round(time.perf_counter() - started, 2)
            stores[name] = store
        for store in stores.values():  # warm-up
            store.search(queries[:5], 10)
        kinds = ("all", "category", "other")
        latency: dict[str, dict[str, list[float]]] = {n: {kind: [] for kind in kinds} for n in stores}
        results: dict[str, dict[str, list[np.ndarray]]] = {n: {kind: [] for kind in kinds} for n in stores}
        names = sorted({c for c in categories if c is not None})
        for i in range(len(queries)):
            own = query_categories[i]
            other = names[(names.index(own) + 1 + i % (len(names) - 1)) % len(names)] if own in names else None
            for name, store in stores.items():
                for kind, category in zip(kinds, (None, own, other), strict=True):
                    ms, found = timed(store, queries[i : i + 1], category)
                    latency[name][kind].append(ms)
                    results[name][kind].append(found)

        def recall(name: str, kind: str) -> float:
            pairs = zip(results["faiss-Flat"][kind], results[name][kind], strict=True)
            return round(float(np.mean([len(set(t) & set(f)) / 10 for t, f in pairs])), 4)

        report = {
            "items": int(len(keep)), "dim": int(vectors.shape[1]), "queries": len(queries), "k": 10,
            "stores": {
                name: {
                    "build_s": build_seconds[name],
                    "median_ms": round(statistics.median(latency[name]["all"]), 3),
                    "p95_ms": round(float(np.percentile(latency[name]["all"], 95)), 3),
                    "filtered_median_ms": round(statistics.median(latency[name]["category"]), 3),
                    "other_category_median_ms": round(statistics.median(latency[name]["other"]), 3),
                    "other_category_p95_ms": round(float(np.percentile(latency[name]["other"], 95)), 3),
                    "recall_at_10": recall(name, "all"),
                    "filtered_recall_at_10": recall(name, "category"),
                    "other_category_recall_at_10": recall(name, "other"),
                }
                for name in stores
            },
        }
        for store in stores.values():
            store.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
