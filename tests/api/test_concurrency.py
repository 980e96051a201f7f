"""Searches running while other clients add and delete items, against a real uvicorn server for a bounded time:
no errors, an acknowledged add is found by its own image at once, an acknowledged delete is never returned again,
no deadlock, and afterwards the catalog database and the index agree."""

from __future__ import annotations

import io
import random
import threading
import time

import httpx2 as httpx

from lookalike.api.main import create_app

from apiserver import TOKEN, running
from imagegen import CATEGORIES, make_image

DURATION_S = 12.0
SEARCHERS = 3
WRITERS = 2


def jpeg(category: str, seed: int) -> bytes:
    buffer = io.BytesIO()
    make_image(category, seed).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


class Shared:
    """What the clients know for sure: acknowledged deletes, and every problem seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deleted: set[int] = set()
        self.errors: list[str] = []
        self.counts = {"search": 0, "add": 0, "delete": 0}

    def gone(self) -> set[int]:
        with self.lock:
            return set(self.deleted)

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)

    def count(self, operation: str) -> None:
        with self.lock:
            self.counts[operation] += 1


def search(http: httpx.Client, data: bytes, k: int) -> httpx.Response:
    return http.post("/api/search", files={"file": ("q.jpg", data, "image/jpeg")}, data={"k": str(k)})


def searcher(url: str, shared: Shared, deadline: float, seed: int) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=url, timeout=60) as http:
        while time.monotonic() < deadline:
            gone = shared.gone()  # deletes acknowledged before this search was sent
            response = search(http, jpeg(rng.choice(CATEGORIES), rng.randrange(1000)), k=10)
            shared.count("search")
            if response.status_code != 200:
                shared.error(f"search: {response.status_code} {response.text[:200]}")
                continue
            results = response.json()["results"]
            if len(results) != 10:
                shared.error(f"search returned {len(results)} results, not 10")
            stale = {r["id"] for r in results} & gone
            if stale:
                shared.error(f"search returned deleted items {sorted(stale)}")


def writer(url: str, shared: Shared, deadline: float, number: int) -> None:
    rng = random.Random(number)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, timeout=60) as http:
        for i in range(10**6):
            if time.monotonic() >= deadline:
                return
            category = rng.choice(CATEGORIES)
            data = jpeg(category, 10_000 * (number + 1) + i)  # never the same image twice
            added = http.post("/api/items", headers=auth, data={"category": category},
                              files=[("files", (f"w{number}-{i}.jpg", data, "image/jpeg"))])
            shared.count("add")
            if added.status_code != 201:
                shared.error(f"add: {added.status_code} {added.text[:200]}")
                continue
            new_id = added.json()["items"][0]["id"]
            top = search(http, data, k=1)
            if top.status_code != 200 or top.json()["results"][0]["id"] != new_id:
                shared.error(f"added item {new_id} is not its own image's top result: {top.text[:200]}")
            if rng.random() < 0.6:
                deleted = http.delete(f"/api/items/{new_id}", headers=auth)
                shared.count("delete")
                if deleted.status_code != 204:
                    shared.error(f"delete {new_id}: {deleted.status_code} {deleted.text[:200]}")
                    continue
                with shared.lock:
                    shared.deleted.add(new_id)
                after = search(http, data, k=5)
                if after.status_code != 200 or new_id in {r["id"] for r in after.json()["results"]}:
                    shared.error(f"deleted item {new_id} still found: {after.text[:200]}")
                if http.get(f"/api/items/{new_id}").status_code != 404:
                    shared.error(f"deleted item {new_id} still readable")


def test_searches_adds_and_deletes_run_together_without_errors_or_stale_results(live_settings):
    app = create_app(live_settings)
    shared = Shared()
    with running(app) as url:
        deadline = time.monotonic() + DURATION_S
        threads = [threading.Thread(target=searcher, args=(url, shared, deadline, s), daemon=True)
                   for s in range(SEARCHERS)]
        threads += [threading.Thread(target=writer, args=(url, shared, deadline, w), daemon=True)
                    for w in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=DURATION_S + 90)
        assert not any(t.is_alive() for t in threads), "a client is stuck: deadlock or a hung request"
        engine = app.state.lookalike.engine
        assert sorted(engine.store.ids().tolist()) == engine.catalog.ids()
        assert not set(engine.catalog.ids()) & shared.deleted
    assert not shared.errors, "\n".join(shared.errors[:20])
    assert shared.counts["search"] >= 20 and shared.counts["add"] >= 4 and shared.counts["delete"] >= 1, shared.counts
