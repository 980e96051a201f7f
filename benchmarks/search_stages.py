"""Where one search's CPU goes inside the server process, stage by stage, and what the garbage collector takes.

    python benchmarks/search_stages.py --home ~/.lookalike --requests 300 [--rounds 3]

Opens the home as `lookalike serve` does (``AppState.open``: the same batchers, catalog view and history writer), then
runs ``--requests`` photo-like JPEG searches one at a time through the steps of ``POST /api/search`` (no HTTP), for
``--rounds`` rounds after a first pass that fills the catalog view. For each stage, the calling thread's CPU per
search (``time.thread_time``): decoding the upload, preparing the model's input, the query's palette, the model
(backbone + head), the index search with the candidates' records, colours and ranking (``search_vectors``), and the
answer (recording the search, JSON). Also the garbage collector's collections per generation and their CPU per
search (``gc.callbacks``), with the startup objects frozen out of collection as the server does (``gc.freeze``), or
not with ``--no-freeze``. Compare two checkouts by running it with each one's ``src`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from common import query_jpegs, write_results
from PIL import Image

from lookalike.api.deps import SearchOptions, dedupe_for
from lookalike.api.presenters import search_answer
from lookalike.api.state import AppState, one_thread_embedding
from lookalike.bootstrap import open_engine
from lookalike.config import Settings
from lookalike.io.images import decode_pixels
from lookalike.search import normalize
from lookalike.signatures import palette
from lookalike.threads import limit_native_threads


class GcClock:
    """Collections per generation, and the CPU they took on the collecting thread."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.count[info["generation"]] += 1
            self.seconds[info["generation"]] += time.thread_time() - self._started


def one_round(state: AppState, jpegs: list[bytes]) -> tuple[dict[str, float], GcClock]:
    """Thread CPU per stage over ``jpegs`` (seconds in all), and the collections meanwhile."""
    service, engine = state.service, state.engine
    extractor, options, embed = engine.extractor, SearchOptions(), one_thread_embedding(engine)
    size = extractor.preprocessing.input_size
    spent: dict[str, float] = defaultdict(float)
    clock = GcClock()
    gc.callbacks.append(clock)
    try:
        for jpeg in jpegs:
            marks = [time.thread_time()]
            pixels = decode_pixels(jpeg, max_pixels=engine.featurizer.max_pixels, draft_size=size)
            marks.append(time.thread_time())
            image = Image.fromarray(pixels)
            inputs = extractor.prepare(image)
            marks.append(time.thread_time())
            colours = palette(image, own=True)
            marks.append(time.thread_time())
            vector = normalize(embed(inputs[None]))
            marks.append(time.thread_time())
            found = service.search_vectors(vector, options.k, palettes=normalize(colours[None]))[0]
            marks.append(time.thread_time())
            search_answer(state, None, "upload", options.k, None, dedupe_for(state, False), found)
            marks.append(time.thread_time())
            for stage, before, after in zip(STAGES, marks[:-1], marks[1:], strict=True):
                spent[stage] += after - before
    finally:
        gc.callbacks.remove(clock)
    return spent, clock


STAGES = ["decode", "prepare", "palette", "model (backbone + head)", "index, records, colours, ranking", "answer"]


def run(home: Path, requests: int, rounds: int, freeze: bool) -> dict[str, Any]:
    os.environ["LOOKALIKE_HOME"] = str(home)
    settings = Settings()
    limit_native_threads(1)  # as a server process
    state = AppState.open(settings, open_engine(settings, reconcile=False))
    try:
        jpegs = query_jpegs(requests)
        one_round(state, jpegs)  # the candidates' records and colours read once, as in a server that has run a while
        if freeze:
            gc.freeze()
        results = []
        for number in range(1, rounds + 1):
            spent, clock = one_round(state, jpegs)
            row = {stage: round(spent[stage] * 1000 / requests, 3) for stage in STAGES}
            row["total_ms"] = round(sum(spent.values()) * 1000 / requests, 3)
            row["gc_collections"] = clock.count
            row["gc_ms_per_search"] = [round(s * 1000 / requests, 3) for s in clock.seconds]
            row["gc_tracked_objects"] = len(gc.get_objects())
            results.append(row)
            print(number, json.dumps(row), flush=True)
        median = {stage: round(statistics.median(r[stage] for r in results), 3) for stage in [*STAGES, "total_ms"]}
        return {"requests": requests, "gc_freeze": freeze, "rounds": results, "median": median}
    finally:
        if freeze:
            gc.unfreeze()
        state.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="an ingested home")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-freeze", dest="freeze", action="store_false",
                        help="leave the startup objects to the garbage collector")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "search_stages.json")
    args = parser.parse_args()
    result = run(args.home, args.requests, args.rounds, args.freeze)
    write_results(args.out, **result)
    print(json.dumps(result["median"], indent=2))


if __name__ == "__main__":
    main()
