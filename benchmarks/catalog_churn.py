"""What a catalog that keeps changing costs a search: the catalog stage (the candidates' records, colours, ranking
and results) with and without another connection changing an item between every two searches.

    python benchmarks/catalog_churn.py --home /tmp/lkdemo --requests 300 --rounds 2 [--item 7]

In process, on an ingested home: the server's search path (``AppState``, as one server worker, one search at a
time) over ``--requests`` photo-like JPEG uploads, first to warm the view (``catalog.view``), then in rounds: the same
uploads with no change, and with ``--item``'s metadata written again (unchanged, but a change to the catalog, as a
feed's or an API client's update is) by another connection before each search. Reports the catalog stage's mean
time per search from the server's own timer (``lookalike_search_stage_duration_seconds``, stage ``catalog``; one
thread, so its wall time is its CPU), and the search's thread CPU. Writes to the home's catalog (the same metadata
again). Results go to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import query_jpegs, write_results
from prometheus_client import REGISTRY

from lookalike.api.deps import SearchOptions
from lookalike.api.routes.search import answer_examples
from lookalike.api.state import AppState
from lookalike.bootstrap import open_engine
from lookalike.catalog.repository import Catalog
from lookalike.config import Settings
from lookalike.threads import limit_native_threads


def catalog_seconds() -> float:
    return REGISTRY.get_sample_value("lookalike_search_stage_duration_seconds_sum", {"stage": "catalog"}) or 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="an ingested home (the demo's)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--item", type=int, default=7, help="the catalog id of the item written between searches")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "catalog_churn.json")
    args = parser.parse_args()
    settings = Settings(home=args.home)
    limit_native_threads(settings.search_threads)
    state = AppState.open(settings, open_engine(settings))
    writer = Catalog(settings.resolved_database_url)  # another connection, as another worker or the sync job
    record = writer.get_items([args.item])[args.item]
    images = query_jpegs(args.requests)
    options = SearchOptions()

    def search_all(churn: bool) -> dict[str, float]:
        searching = 0.0
        catalog = catalog_seconds()
        for image in images:
            if churn:
                writer.update_attributes([(record.id, record.item_id, record.metadata)])
            started = time.thread_time()
            answer_examples(state, None, options, [image], ["upload"], [], time.perf_counter())
            searching += time.thread_time() - started
        return {"catalog_stage_ms": round((catalog_seconds() - catalog) * 1000 / len(images), 3),
                "search_cpu_ms": round(searching * 1000 / len(images), 3)}

    try:
        search_all(churn=False)  # warm: these uploads' candidates in memory
        rounds = [{"no change": search_all(churn=False), "a change before each search": search_all(churn=True)}
                  for _ in range(args.rounds)]
    finally:
        state.close()
        writer.close()
    for row in rounds:
        print(json.dumps(row), flush=True)
    write_results(args.out, rounds=rounds)


if __name__ == "__main__":
    main()
