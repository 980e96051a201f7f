"""GET /api/embedding-map while the map is computed: 202 with its progress, one computation however many ask, the
finished map in the same shape as before, and a failure answered once (500) then retried."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2 as httpx
import pytest
from threadpoolctl import threadpool_limits

from lookalike import embedding_map
from lookalike.api.main import create_app
from lookalike.config import Settings
from lookalike.engine import open_engine

from apiserver import ingested, running


@pytest.fixture
def home(settings: Settings, catalog_dir) -> Settings:
    return ingested(settings, catalog_dir)


@pytest.fixture
def url(home: Settings) -> Iterator[str]:
    with running(create_app(home)) as base:
        yield base


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, list[int]]]:
    """t-SNE pauses a third of the way through until the event is set; the list counts the computations."""
    release, computations = threading.Event(), []
    real_tsne, real_compute = embedding_map._tsne, embedding_map.compute_map

    def paused_tsne(vectors, seed, progress):
        progress(0.35, "t-SNE, iteration 125 of 500")
        release.wait(30)
        return real_tsne(vectors, seed, progress)

    def counted_compute(*args, **kwargs):
        computations.append(1)
        return real_compute(*args, **kwargs)

    monkeypatch.setattr(embedding_map, "_tsne", paused_tsne)
    monkeypatch.setattr(embedding_map, "compute_map", counted_compute)
    yield release, computations
    release.set()


def poll_until_ready(url: str, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while (response := httpx.get(f"{url}/api/embedding-map")).status_code == 202:
        assert time.monotonic() < deadline, "the map was not ready in time"
        time.sleep(0.1)
    return response


def test_many_requests_at_once_start_one_computation_and_see_its_progress(url: str, held) -> None:
    release, computations = held
    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(lambda _: httpx.get(f"{url}/api/embedding-map"), range(8)))
    assert {r.status_code for r in first} == {202}
    for response in first:
        body = response.json()
        assert body["status"] == "computing" and 0 <= body["progress"] <= 1 and body["stage"]
        assert body["elapsed_s"] >= 0 and response.headers["retry-after"] == "1"
    deadline = time.monotonic() + 30
    while (body := httpx.get(f"{url}/api/embedding-map").json())["progress"] < 0.35:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert body == {"status": "computing", "progress": 0.35, "stage": "t-SNE, iteration 125 of 500",
                    "elapsed_s": body["elapsed_s"]}
    with ThreadPoolExecutor(8) as pool:
        again = list(pool.map(lambda _: httpx.get(f"{url}/api/embedding-map").json()["progress"], range(8)))
    assert min(again) >= 0.35  # progress never goes back
    release.set()
    done = poll_until_ready(url)
    assert done.status_code == 200 and len(computations) == 1
    points = done.json()["points"]
    assert set(done.json()) == {"model_version", "items", "points"} and len(points) == 18
    assert all(set(p) == {"id", "x", "y", "category"} and 0 <= p["x"] <= 1 and 0 <= p["y"] <= 1 for p in points)
    assert httpx.get(f"{url}/api/embedding-map").json() == done.json()  # remembered: no second computation
    assert len(computations) == 1


def test_a_failed_computation_is_answered_once_with_500_then_retried(url: str, monkeypatch) -> None:
    real = embedding_map.compute_map
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError("out of memory in t-SNE")
        return real(*args, **kwargs)

    monkeypatch.setattr(embedding_map, "compute_map", flaky)
    failed = poll_until_ready(url)
    assert failed.status_code == 500
    assert "out of memory in t-SNE" in failed.json()["detail"] and "retry" in failed.json()["detail"]
    assert poll_until_ready(url).status_code == 200 and len(calls) == 2


def test_compute_map_reports_every_tsne_iteration_in_order(home: Settings) -> None:
    engine = open_engine(home)
    seen: list[tuple[float, str]] = []
    try:
        with threadpool_limits(1):  # two OpenMP threads on two busy cores take seconds to get going
            result = embedding_map.compute_map(engine, progress=lambda fraction, stage: seen.append((fraction, stage)))
    finally:
        engine.close()
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0 and seen[-1] == (1.0, "done")
    iterations = [stage for _, stage in seen if stage.startswith("t-SNE, iteration")]
    # scikit-learn's t-SNE calls its objective once per iteration (stopping early at the latest after 250 + 50).
    assert len(iterations) >= 300, iterations[-3:]
    assert iterations[0] == "t-SNE, iteration 1 of 500"
    assert len(result["points"]) == 18
