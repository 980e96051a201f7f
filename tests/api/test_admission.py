"""Read keys and rate limits, through the real app: a key is needed to read when keys are set (the dashboard's
cookie counts, the write token reads too, a read key cannot write), and a client over its limit gets 429 with
Retry-After while another client's searches go on; writes have their own limit; /metrics is for 127.0.0.1."""

from __future__ import annotations

import multiprocessing
import time

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from lookalike.api.admission import TokenBuckets
from lookalike.api.main import create_app

from apiserver import TOKEN, ingested

READ_KEY = "reader-key-1"


@pytest.fixture
def home(settings, catalog_dir):
    return ingested(settings.model_copy(update={"api_token": SecretStr(TOKEN)}), catalog_dir)


def search(client: TestClient, data: bytes, **headers: str):
    return client.post("/api/search?k=2", content=data, headers={"Content-Type": "image/jpeg", **headers})


def test_read_keys_guard_reads_and_only_reads(home, query_dir):
    settings = home.model_copy(update={"read_tokens": [SecretStr(READ_KEY), SecretStr("other")]})
    data = next(query_dir.rglob("*.jpg")).read_bytes()
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/health").status_code == 200
        assert client.get("/").status_code == 200  # the dashboard's page holds no catalog data
        refused = search(client, data)
        assert refused.status_code == 401 and "key" in refused.json()["detail"]
        assert client.get("/api/stats", headers={"Authorization": "Bearer wrong"}).status_code == 401
        found = search(client, data, Authorization=f"Bearer {READ_KEY}")
        assert found.status_code == 200
        item = found.json()["results"][0]["id"]
        assert client.get(f"/api/items/{item}/image").status_code == 401
        client.cookies.set("lookalike_key", READ_KEY)  # what the dashboard sends, images included
        assert client.get(f"/api/items/{item}/image").status_code == 200
        client.cookies.clear()
        assert client.get("/api/stats", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        history = client.get("/api/history", headers={"Authorization": f"Bearer {READ_KEY}", "X-Shopper-Id": "s1"})
        assert history.status_code == 200, history.text  # a read key is no wrong write token
        write = client.delete(f"/api/items/{item}", headers={"Authorization": f"Bearer {READ_KEY}"})
        assert write.status_code == 403
        assert client.get(f"/api/items/{item}", headers={"Authorization": f"Bearer {READ_KEY}"}).status_code == 200


def test_a_client_over_its_limit_waits_while_another_searches_on(home, query_dir):
    settings = home.model_copy(update={"search_rate": 0.05, "search_burst": 3, "write_rate": 0.05,
                                       "write_burst": 1})
    data = next(query_dir.rglob("*.jpg")).read_bytes()
    app = create_app(settings)
    with TestClient(app, client=("10.0.0.1", 5000)) as greedy, TestClient(app, client=("10.0.0.2", 5000)) as polite:
        codes = [search(greedy, data).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        refused = search(greedy, data)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert "too many" in refused.json()["detail"]
        assert [search(polite, data).status_code for _ in range(3)] == [200, 200, 200]
        assert greedy.get("/api/stats").status_code == 200  # not a search
        writes = [greedy.delete(f"/api/items/{10**9 + i}", headers={"Authorization": f"Bearer {TOKEN}"}).status_code
                  for i in range(2)]
        assert writes == [404, 429]  # writes have a bucket of their own


def test_a_shopper_over_its_limit_is_refused_from_any_address(home, query_dir):
    settings = home.model_copy(update={"shopper_search_rate": 0.05, "search_burst": 2})
    data = next(query_dir.rglob("*.jpg")).read_bytes()
    app = create_app(settings)
    with TestClient(app, client=("10.0.0.1", 5000)) as first, TestClient(app, client=("10.0.0.2", 5000)) as second:
        assert search(first, data, **{"X-Shopper-Id": "shopper-a"}).status_code == 200
        assert search(second, data, **{"X-Shopper-Id": "shopper-a"}).status_code == 200
        assert search(second, data, **{"X-Shopper-Id": "shopper-a"}).status_code == 429
        assert search(second, data, **{"X-Shopper-Id": "shopper-b"}).status_code == 200


def test_metrics_are_for_the_local_machine_unless_opened(home):
    with TestClient(create_app(home), client=("10.0.0.9", 5000)) as remote:
        assert remote.get("/metrics").status_code == 403
    with TestClient(create_app(home.model_copy(update={"metrics_public": True})), client=("10.0.0.9", 5000)) as c:
        answer = c.get("/metrics")
        assert answer.status_code == 200 and "lookalike_http_requests_total" in answer.text


def _open_buckets_at(path: str, start: float) -> str | None:
    while time.time() < start:
        pass
    try:
        TokenBuckets(path).take("client", 1.0, 5)
    except Exception as exc:  # noqa: BLE001 - the test reports it
        return repr(exc)
    return None


def test_server_workers_starting_together_all_open_the_shared_buckets(tmp_path):
    """Workers open the rate limits' new SQLite file at the same moment: SQLite refused the switch to WAL with
    "database is locked" (no busy wait) in about half of such starts, and the worker, then the server, exited."""
    with multiprocessing.get_context("fork").Pool(4) as pool:
        for trial in range(8):
            start = time.time() + 0.1
            failures = [f for f in pool.starmap(_open_buckets_at, [(str(tmp_path / f"limits-{trial}.db"), start)] * 4)
                        if f]
            assert failures == [], failures
