"""Filtered similarity against unfiltered search, side by side, at 60,000 and 1,000,000 items.

    python benchmarks/filters.py --source-home ~/.lookalike [--sizes 60000 1000000] [--queries 200]

Each size: the demo catalog's real 128-d embeddings, replicated with noise up to the size as the scale benchmark
does (``scale.replicate``), in a FAISS store of the type the automatic choice picks (HNSW at these sizes); queries
are further noisy copies of catalog items. One numeric attribute, ``bucket``, uniform over 0..9999, is written to
a catalog database's attribute table; filters ``bucket < 5000, 500, 50, 5`` match 50%, 5%, 0.5% and 0.05% of the
items. For each, one query at a time (k = 10): the filter's answer (``filters.AttributeIndex.matching``, a new
filter each query so no answer is remembered), the store's filtered search, their sum against the unfiltered
search, and recall@10 against brute force over the matching items.

    python benchmarks/filters.py --source-home ~/.lookalike --api [--requests 100]

End to end instead: a copy of the demo home (its files hard-linked, its catalog database copied) gets the same
``bucket`` attribute, a real `lookalike serve` answers sequential ``POST /api/search`` uploads of shopper-style
JPEGs, unfiltered and with each filter in turn, interleaved, and the latency a client sees is compared.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from common import machine, multipart, percentiles, query_jpegs, server_process
from scale import real_embeddings, replicate
from sqlalchemy import insert

from lookalike.catalog.attributes import bump
from lookalike.catalog.models import ItemAttribute
from lookalike.catalog.repository import Catalog
from lookalike.filters import AttributeIndex
from lookalike.index.base import IndexManifest
from lookalike.index.faiss_store import FaissStore

DIM = 128
NOISE = 0.3  # as the scale benchmark's default
SHARES = (0.5, 0.05, 0.005, 0.0005)
RESULTS = Path(__file__).parent / "results" / "filters.json"


def timed(fn, *args):  # noqa: ANN001, ANN002, ANN201
    started = time.perf_counter()
    out = fn(*args)
    return (time.perf_counter() - started) * 1000, out


def run(base: np.ndarray, n: int, queries: int, work: Path) -> dict:
    rng = np.random.default_rng(n)
    x, _ = replicate(base, n, NOISE, seed=n)
    ids = np.arange(1, n + 1, dtype=np.int64)
    store = FaissStore(work / "index", IndexManifest("bench", "bench", "0" * 64, DIM))
    started = time.perf_counter()
    store.add(ids, x, [None] * n)
    kind = store.optimize(2048 * 2**20).key
    build_s = time.perf_counter() - started
    bucket = rng.integers(0, 10_000, n)
    catalog = Catalog(f"sqlite:///{work / 'catalog.db'}")
    with catalog.session() as session, session.begin():
        for start in range(0, n, 50_000):
            session.execute(insert(ItemAttribute), [{"item": int(i), "name": "bucket", "kind": "number",
                                                     "num": float(b), "text": None}
                                                    for i, b in zip(ids[start:start + 50_000],
                                                                    bucket[start:start + 50_000], strict=True)])
        bump(session)
    index = AttributeIndex(catalog.attributes)
    load_ms, _ = timed(index.matching, index.parse({"bucket": {"lt": 10_000}}))  # loads the posting list once
    q = x[rng.choice(n, queries, replace=False)] + rng.normal(0, NOISE / np.sqrt(DIM), (queries, DIM))
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)  # noisy copies, as scale.py queries
    for row in q[:20]:  # warm up
        store.search(row[None], 10)
    unfiltered = [timed(store.search, row[None], 10)[0] for row in q]
    out = {"items": n, "index": kind, "build_s": round(build_s, 1), "postings_load_ms": round(load_ms, 1),
           "unfiltered_ms": percentiles(unfiltered), "filters": {}}
    for share in SHARES:
        limit = int(10_000 * share)
        filter_ms, search_ms, total_ms, recalls = [], [], [], []
        for i, row in enumerate(q):
            bound = limit - 1e-6 * (i + 1)  # a new filter each query: no answer is remembered
            evaluate_ms, allowed = timed(index.matching, index.parse({"bucket": {"lt": bound}}))
            search_ms_one, (_, found) = timed(store.search, row[None], 10, None, allowed)
            filter_ms.append(evaluate_ms)
            search_ms.append(search_ms_one)
            total_ms.append(evaluate_ms + search_ms_one)
            truth = allowed[np.argsort(-(x[allowed - 1] @ row))[:10]]
            recalls.append(len(set(truth.tolist()) & set(found[0].tolist())) / max(1, len(truth)))
        matching = int((bucket < limit).sum())
        out["filters"][f"{share:.2%}"] = {
            "matching": matching, "filter_ms": percentiles(filter_ms), "search_ms": percentiles(search_ms),
            "total_ms": percentiles(total_ms), "recall_at_10": round(float(np.mean(recalls)), 4),
            "total_p50_vs_unfiltered_p50": round(percentiles(total_ms)["p50_ms"] / percentiles(unfiltered)["p50_ms"],
                                                 2)}
        print(json.dumps({"items": n, "share": share, **out["filters"][f"{share:.2%}"]}), flush=True)
    store.close()
    catalog.close()
    return out


def api(source_home: Path, requests: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="filters-api-"))
    home = work / "home"
    subprocess.run(["cp", "-al", str(source_home), str(home)], check=True)
    for name in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
        if (home / name).exists():
            (home / name).unlink()
            shutil.copyfile(source_home / name, home / name)
    shutil.rmtree(home / "index")
    shutil.copytree(source_home / "index", home / "index")
    catalog = Catalog(f"sqlite:///{home / 'catalog.db'}")
    ids = np.array(catalog.ids(), np.int64)
    bucket = np.random.default_rng(0).integers(0, 10_000, len(ids))
    with catalog.session() as session, session.begin():
        rows = [{"item": int(i), "name": "bucket", "kind": "number", "num": float(b), "text": None}
                for i, b in zip(ids, bucket, strict=True)]
        session.execute(insert(ItemAttribute), rows)
        bump(session)
    catalog.close()
    photos = query_jpegs(20)
    cases: dict[str, str | None] = {"unfiltered": None} | {
        f"{share:.2%}": json.dumps({"bucket": {"lt": int(10_000 * share)}}) for share in SHARES}
    latencies: dict[str, list[float]] = {name: [] for name in cases}
    try:
        with server_process(home) as (base, _):
            for n in range(requests + 10):
                for name, flt in cases.items():
                    fields = {"k": "10"} | ({"filter": flt} if flt else {})
                    body, content_type = multipart(photos[n % len(photos)], fields)
                    request = urllib.request.Request(f"{base}/api/search", data=body, method="POST",
                                                     headers={"Content-Type": content_type})
                    started = time.perf_counter()
                    with urllib.request.urlopen(request, timeout=60) as answer:
                        answer.read()
                    if n >= 10:  # the first rounds warm up (posting lists, caches)
                        latencies[name].append((time.perf_counter() - started) * 1000)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base_p50 = percentiles(latencies["unfiltered"])["p50_ms"]
    out = {"items": len(ids), "requests": requests, "latency_ms": {}}
    for name, values in latencies.items():
        stats = percentiles(values)
        out["latency_ms"][name] = stats | {"p50_vs_unfiltered": round(stats["p50_ms"] / base_p50, 2)}
        print(name, stats, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source-home", type=Path, required=True, help="An ingested demo home (its embeddings).")
    parser.add_argument("--sizes", type=int, nargs="+", default=[60_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--api", action="store_true", help="End to end through a real server instead.")
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    if args.api:
        summary = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "api": api(args.source_home, args.requests)}
        RESULTS.with_name("filters_api.json").write_text(json.dumps(summary, indent=2))
        return
    base = real_embeddings(args.source_home)[0]
    results = []
    for n in args.sizes:
        work = Path(tempfile.mkdtemp(prefix=f"filters-{n}-"))
        try:
            results.append(run(base, n, args.queries, work))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    summary = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "runs": results}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2))
    for run_ in results:
        print(run_["items"], run_["index"], "unfiltered", run_["unfiltered_ms"])


if __name__ == "__main__":
    main()
