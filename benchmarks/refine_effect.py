"""Effect of one round of relevance feedback (Rocchio, lookalike.refine) on category precision@5.

    LOOKALIKE_HOME=/tmp/copy-of-demo-home python benchmarks/refine_effect.py --queries 500

For each of N seeded test-split queries of the Fashion-MNIST manifest (HOME/datasets/fashion-mnist/manifest.csv)
against the ingested catalog (the 60,000 training images): search the top k; a simulated shopper likes the
results of the query's category and dislikes the others; the query is refined and searched again, exactly as
POST /api/search/refine does. Prints JSON: precision@k before and after, over all queries and over those
whose first list had a wrong result; and the precision of the results the shopper had not judged yet (the
refined list with the judged items left out, the "residual" measure that credits no re-found likes).
"""

from __future__ import annotations

import argparse
import json
import random
import time

import numpy as np

from lookalike.bootstrap import open_engine
from lookalike.config import get_settings
from lookalike.data.sources import open_source
from lookalike.refine import ALPHA, BETA, GAMMA, rocchio
from lookalike.search import SearchService


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = get_settings()
    manifest = settings.datasets_dir / "fashion-mnist" / "manifest.csv"
    tests = open_source(manifest, split="test")
    sample = random.Random(args.seed).sample(tests, min(args.queries, len(tests)))
    engine = open_engine(settings)
    service = SearchService(engine)
    started = time.perf_counter()
    k = args.k
    before, after, residual, hard_before, hard_after = [], [], [], [], []
    dim = engine.head.dim
    try:
        for batch in engine.featurizer.iter_batches(sample, lambda e: e.path):
            queries = engine.embed(batch.features)
            for entry, query, first in zip(batch.items, queries, service.search_vectors(queries, k), strict=True):
                relevant = [h.category == entry.category for h in first.hits]
                liked = [h.id for h, ok in zip(first.hits, relevant, strict=True) if ok]
                disliked = [h.id for h, ok in zip(first.hits, relevant, strict=True) if not ok]
                refined = rocchio(query, service.item_vectors(liked) if liked else np.zeros((0, dim), np.float32),
                                  service.item_vectors(disliked) if disliked else np.zeros((0, dim), np.float32))
                judged = set(liked) | set(disliked)
                second = service.search_vectors(refined, k)[0]
                fresh = service.search_vectors(refined, k, exclude=judged)[0]
                p_before = float(np.mean(relevant))
                p_after = float(np.mean([h.category == entry.category for h in second.hits]))
                before.append(p_before)
                after.append(p_after)
                residual.append(float(np.mean([h.category == entry.category for h in fresh.hits])))
                if p_before < 1:
                    hard_before.append(p_before)
                    hard_after.append(p_after)
    finally:
        engine.catalog.close()
    print(json.dumps({
        "queries": len(before), "k": k, "rocchio": {"alpha": ALPHA, "beta": BETA, "gamma": GAMMA},
        f"precision@{k} before": round(float(np.mean(before)), 4),
        f"precision@{k} after one round": round(float(np.mean(after)), 4),
        f"precision@{k} of not-yet-judged results after": round(float(np.mean(residual)), 4),
        "queries with a wrong result first": len(hard_before),
        f"their precision@{k} before": round(float(np.mean(hard_before)), 4) if hard_before else None,
        f"their precision@{k} after": round(float(np.mean(hard_after)), 4) if hard_after else None,
        "improved / unchanged / worse": [int(np.sum(np.array(after) > np.array(before))),
                                         int(np.sum(np.array(after) == np.array(before))),
                                         int(np.sum(np.array(after) < np.array(before)))],
        "seconds": round(time.perf_counter() - started, 1),
        "catalog": len(engine.store), "model": engine.model_version,
    }, indent=2))


if __name__ == "__main__":
    main()
