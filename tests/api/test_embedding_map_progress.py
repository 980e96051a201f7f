"""GET /api/embedding-map while the map is computed: 202 with its progress, one computation however many ask, the
finished map in the same shape as before, and a failure answered once (503 with Retry-After) then retried."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2 as httpx
import numpy as np
import pytest

from lookalike import embedding_map
from lookalike.api.main import create_app
from lookalike.bootstrap import open_engine
from lookalike.config import Settings

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


def test_a_failed_computation_is_answered_once_with_503_then_retried(url: str, monkeypatch) -> None:
    real = embedding_map.compute_map
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError("out of memory in t-SNE")
        return real(*args, **kwargs)

    monkeypatch.setattr(embedding_map, "compute_map", flaky)
    failed = poll_until_ready(url)
    assert failed.status_code == 503 and failed.headers["retry-after"] == "1"
    assert failed.json() == {"detail": "the embedding map could not be computed: MemoryError: out of memory in t-SNE; "
                                       "retry"}
    assert poll_until_ready(url).status_code == 200 and len(calls) == 2


def test_compute_map_reports_both_tsne_phases_in_order_and_is_the_same_for_a_seed(home: Settings) -> None:
    engine = open_engine(home)
    seen: list[tuple[float, str]] = []
    try:
        result = embedding_map.compute_map(engine, progress=lambda fraction, stage: seen.append((fraction, stage)))
        again = embedding_map.compute_map(engine)
    finally:
        engine.close()
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0 and seen[-1] == (1.0, "done")
    reported = [(f, stage) for f, stage in seen if stage.startswith("t-SNE, iteration")]
    # openTSNE numbers each phase's iterations from 1: the map counts on across early exaggeration (250) and the rest
    assert [stage for _, stage in reported] == [f"t-SNE, iteration {i} of 500" for i in range(10, 501, 10)]
    assert {stage: f for f, stage in reported}["t-SNE, iteration 250 of 500"] == pytest.approx(0.55)
    assert reported[-1][0] == 1.0 and len(result["points"]) == 18
    assert again == result  # deterministic for a seed
    xy = np.array([(p["x"], p["y"]) for p in result["points"]])
    nearest = np.argsort(((xy[:, None] - xy[None]) ** 2).sum(axis=2), axis=1)[:, 1]
    categories = [p["category"] for p in result["points"]]
    assert sum(categories[i] == categories[j] for i, j in enumerate(nearest)) >= 16  # a category clusters
