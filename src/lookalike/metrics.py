"""Prometheus metrics of the service (``prometheus-client``): requests, the stages of a search, micro-batches,
the index, syncs and errors.

With several server processes each one writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` (the library's
multiprocess mode, which ``lookalike serve --workers N`` sets up before it starts them) and :func:`exposition`
adds them up, so a scrape that lands on any worker reports the whole server.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)

REQUESTS = Counter("lookalike_http_requests", "HTTP requests answered, by route and status.",
                   ["method", "route", "status"])
REQUEST_SECONDS = Histogram("lookalike_http_request_duration_seconds", "Time to answer an HTTP request, by route.",
                            ["method", "route"], buckets=LATENCY_BUCKETS)
SEARCH_STAGE_SECONDS = Histogram("lookalike_search_stage_duration_seconds",
                                 "Time in each stage of a search: decode (and prepare the image), embed (backbone "
                                 "and head, in its micro-batch), index (vector search), catalog (records, colours, "
                                 "ranking), record (history).", ["stage"], buckets=STAGE_BUCKETS)
BATCH_SIZE = Histogram("lookalike_micro_batch_size", "Rows per shared backbone pass or index search.", ["batcher"],
                       buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64))
INDEX_ITEMS = Gauge("lookalike_index_items", "Items in the vector index.", multiprocess_mode="mostrecent")
SYNCS = Counter("lookalike_syncs", "Feed syncs finished, by outcome (succeeded, failed).", ["outcome"])
ERRORS = Counter("lookalike_errors", "Errors answered or skipped, by kind.", ["kind"])


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time a stage of a search into ``SEARCH_STAGE_SECONDS``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        SEARCH_STAGE_SECONDS.labels(name).observe(time.perf_counter() - started)


def exposition() -> tuple[bytes, str]:
    """The text format of every metric (of every server process in multiprocess mode) and its content type."""
    if os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def process_gone(pid: int) -> None:
    """Forget the live gauges of a server process that exited (multiprocess mode)."""
    if os.environ.get(MULTIPROCESS_DIR):
        multiprocess.mark_process_dead(pid)
