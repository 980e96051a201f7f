"""Search at scale: exact vs HNSW vs IVF-PQ at 100,000 and 1,000,000 vectors, and a 1,000,000-item home.

    python benchmarks/scale.py --source-home ~/.lookalike --sizes 100000 1000000

Vectors are the demo catalog's real 128-d embeddings, replicated with Gaussian noise (norm ``--noise``, then
re-normalized) up to the size; the first copy of each is the original. Queries are further noisy copies that are
not in the index. Each index is built through :class:`FaissStore` exactly as the product builds it; memory per
item is the growth of the process's resident memory while building it, over the number of items.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import median
from sqlalchemy import insert

from lookalike.bootstrap import open_engine
from lookalike.catalog.models import Item
from lookalike.catalog.repository import Catalog
from lookalike.config import Settings
from lookalike.engine import index_manifest
from lookalike.index.base import IndexManifest
from lookalike.index.choose import choose_index
from lookalike.index.faiss_store import FaissStore
from lookalike.threads import limit_native_threads

QUERIES = 1000


def real_embeddings(home: Path) -> tuple[np.ndarray, list[str | None], list[str], IndexManifest]:
    """(embeddings, categories, paths, manifest) of every item of an ingested home, from its feature cache."""
    engine = open_engine(Settings(home=home, _env_file=None), reconcile=False)  # type: ignore[call-arg]
    try:
        records = list(engine.catalog.iter_items())
        cache = engine.featurizer.cache
        assert cache is not None
        found, features = cache.get([r.content_hash for r in records])
        if not found.all():
            raise RuntimeError(f"{int((~found).sum())} items of {home} are not in its feature cache")
        vectors = np.concatenate([engine.embed(features[i : i + 8192]) for i in range(0, len(records), 8192)])
        return vectors, [r.category for r in records], [r.path for r in records], index_manifest(
            engine.extractor, engine.head)
    finally:
        engine.catalog.close()


def replicate(vectors: np.ndarray, n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors: the originals, then noisy copies; and the source row of each."""
    rng = np.random.default_rng(seed)
    source = np.concatenate([np.arange(min(n, len(vectors))), rng.integers(0, len(vectors), max(0, n - len(vectors)))])
    out = np.empty((n, vectors.shape[1]), np.float32)
    for start in range(0, n, 65536):
        rows = source[start : start + 65536]
        chunk = vectors[rows] + rng.normal(0, noise / np.sqrt(vectors.shape[1]), (len(rows), vectors.shape[1]))
        if start < len(vectors):  # the originals stay exact
            originals = min(len(vectors), start + len(rows)) - start
            chunk[:originals] = vectors[rows[:originals]]
        out[start : start + len(rows)] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out, source


LOAD_AND_MEASURE = """
import json, sys
from pathlib import Path
from lookalike.index.base import IndexManifest
from lookalike.index.faiss_store import FaissStore
statm = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096
before = statm()
store = FaissStore.load(Path(sys.argv[1]), IndexManifest(**json.loads(sys.argv[2])))
print((statm() - before) / len(store))
"""


def loaded_bytes_per_item(store: FaissStore) -> float:
    """Resident memory a fresh process gains by loading the saved store, per item."""
    store.save()
    out = subprocess.run([sys.executable, "-c", LOAD_AND_MEASURE, str(store.directory),
                          json.dumps(store.manifest.to_dict())], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def build(directory: Path, manifest: IndexManifest, key: str, vectors: np.ndarray,
          categories: list[str | None]) -> tuple[FaissStore, float, float]:
    """A store of ``vectors`` (ids 1..n) as index ``key``: (store, build seconds, loaded bytes per item)."""
    limit_native_threads(os.cpu_count() or 1)  # builds use every core
    started = time.perf_counter()
    store = FaissStore(directory, manifest, key)
    chunk = 200_000 if key.startswith("IVF") else 65536  # IVF trains on its first chunk
    for start in range(0, len(vectors), chunk):
        ids = np.arange(start + 1, start + 1 + len(vectors[start : start + chunk]), dtype=np.int64)
        store.add(ids, vectors[start : start + chunk], categories[start : start + chunk])
    seconds = time.perf_counter() - started
    return store, seconds, loaded_bytes_per_item(store)


def measure(store: FaissStore, queries: np.ndarray, truth: np.ndarray | None, k: int = 10) -> dict[str, float]:
    """Median single-query latency (one thread, as the server runs it) and recall@k against ``truth``."""
    limit_native_threads(1)
    timings, found = [], []
    for query in queries:
        started = time.perf_counter()
        _, ids = store.search(query[None, :], k)
        timings.append((time.perf_counter() - started) * 1000)
        found.append(ids[0])
    result = {"p50_ms": round(median(timings), 3), "p99_ms": round(float(np.percentile(timings, 99)), 3)}
    if truth is not None:
        hits = [len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
        result["recall_at_10"] = round(sum(hits) / (k * len(truth)), 4)
    return result


def index_scale(base: np.ndarray, categories: list[str | None], manifest: IndexManifest, sizes: list[int],
                noise: float, work: Path, keep_auto_at: int | None = None,
                queries_n: int = QUERIES) -> tuple[list[dict[str, Any]], Any]:
    """Rows of the comparison; and the automatically chosen store at ``keep_auto_at`` items, if asked."""
    budget = Settings(_env_file=None).index_memory_budget_mb * 2**20  # type: ignore[call-arg]
    rows, kept = [], None
    queries, _ = replicate(base, len(base) + queries_n, noise, seed=99)
    queries = queries[len(base):]
    for n in sizes:
        vectors, source = replicate(base, n, noise, seed=1)
        cats = [categories[i] for i in source]
        auto = choose_index(n, manifest.dim, budget)
        compressed = choose_index(n, manifest.dim, 64 * n)  # a budget of 64 bytes per item forces IVF-PQ
        truth = None
        for key in dict.fromkeys(["Flat", f"HNSW{32}", compressed.key, auto.key]):
            store, seconds, per_item = build(work / f"index-{n}-{key}", manifest, key, vectors, cats)
            stats = measure(store, queries, truth)
            if key == "Flat":
                truth = np.stack([store.search(q[None, :], 10)[1][0] for q in queries])
                stats["recall_at_10"] = 1.0
            rows.append({"items": n, "index": key, "automatic_choice": key == auto.key,
                         "build_s": round(seconds, 1), "bytes_per_item": round(per_item), **stats})
            if n == keep_auto_at and key == auto.key:
                kept = (store, vectors, cats, source)
            else:
                del store
    return rows, kept


def make_home(source_home: Path, home: Path, kept: Any, paths: list[str]) -> Path:
    """A servable home of ``len(vectors)`` items: the source's models, a catalog DB row per vector, the store."""
    store, vectors, categories, source = kept
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    for name in ("models", "features"):
        (home / name).symlink_to((source_home / name).resolve())
    if (source_home / "heads").is_dir():
        shutil.copytree(source_home / "heads", home / "heads")
    catalog = Catalog(f"sqlite:///{home / 'catalog.db'}")
    version = store.manifest.model_version
    with catalog.engine.begin() as connection:
        for start in range(0, len(vectors), 50_000):
            connection.execute(insert(Item), [
                {"id": i + 1, "path": paths[source[i]] if i < len(paths) else f"{paths[source[i]]}#copy-{i}",
                 "content_hash": f"synthetic{i:031d}", "category": categories[i], "item_id": None, "extra": {},
                 "model_version": version}
                for i in range(start, min(start + 50_000, len(vectors)))])
    catalog.close()
    shutil.copytree(store.directory, home / "index")  # saved when its memory was measured
    return home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source-home", type=Path, required=True, help="An ingested home with a feature cache.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--noise", type=float, default=0.3)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="lookalike-scale-"))
    base, categories, _, manifest = real_embeddings(args.source_home)
    rows, _ = index_scale(base, categories, manifest, args.sizes, args.noise, work)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
