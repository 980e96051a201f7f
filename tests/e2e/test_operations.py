"""Running it in production, on a real `lookalike serve` with one worker and with two: /metrics counts exactly the
requests made and parses as Prometheus text, every answer and log line carries the request's id, and a rate limit
holds for the server as a whole."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from test_serve_workers import one_client_per_worker

from apiserver import TOKEN, ingested
from imagegen import make_image

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def jpeg(category: str, seed: int) -> bytes:
    buffer = io.BytesIO()
    make_image(category, seed).save(buffer, format="JPEG")
    return buffer.getvalue()


class Server:
    """A real `lookalike serve` subprocess; its log goes to a file (read with :meth:`log_lines`)."""

    def __init__(self, settings, workers: int, log: Path, **env: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        environment = {**os.environ, "LOOKALIKE_HOME": str(settings.home),
                       "LOOKALIKE_MODELS_DIR": str(settings.models_dir), "LOOKALIKE_API_TOKEN": TOKEN,
                       "LOOKALIKE_BATCH_SIZE": "8", **{f"LOOKALIKE_{k.upper()}": v for k, v in env.items()}}
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lookalike.cli", "serve", "--port", str(port), "--workers", str(workers)],
            env=environment, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"{self.base}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)

    def clients(self, workers: int) -> list[httpx.Client]:
        """Keep-alive clients, one bound to each worker process."""
        return list(one_client_per_worker(self.base, workers).values())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)

    def log_lines(self) -> list[str]:
        return self.log.read_text().splitlines()


@pytest.fixture
def home(settings, catalog_dir):
    return ingested(settings.model_copy(update={"api_token": SecretStr(TOKEN)}), catalog_dir)


def scrape(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed by the Prometheus text parser: (name, sorted labels) -> value."""
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text) for sample in family.samples}


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_move_by_exactly_the_requests_made(home, tmp_path, query_dir, workers):
    server = Server(home, workers, tmp_path / "server.log")
    try:
        clients = server.clients(workers)
        before = scrape(clients[0])
        queries = sorted(query_dir.rglob("*.jpg"))
        searches = 7
        for i in range(searches):  # spread over every worker
            path = queries[i % len(queries)]
            answer = clients[i % workers].post("/api/search", files={"file": (path.name, path.read_bytes())},
                                               data={"k": "3"})
            assert answer.status_code == 200, answer.text
        for client in clients:  # one refused request per worker
            assert client.post("/api/search", data={"k": "0"}).status_code == 422
        after = scrape(clients[-1])  # a scrape that lands on any worker sees them all
        search_ok = ("lookalike_http_requests_total", {"method": "POST", "route": "/api/search", "status": "200"})
        refused = ("lookalike_http_requests_total", {"method": "POST", "route": "/api/search", "status": "422"})
        assert value(after, search_ok[0], **search_ok[1]) - value(before, search_ok[0], **search_ok[1]) == searches
        assert value(after, refused[0], **refused[1]) - value(before, refused[0], **refused[1]) == workers
        assert (value(after, "lookalike_errors_total", kind="invalid_request")
                - value(before, "lookalike_errors_total", kind="invalid_request")) == workers
        for stage in ("decode", "embed", "index", "catalog", "record"):
            count = "lookalike_search_stage_duration_seconds_count"
            assert value(after, count, stage=stage) - value(before, count, stage=stage) == searches, stage
        latency = "lookalike_http_request_duration_seconds_count"
        assert (value(after, latency, method="POST", route="/api/search")
                - value(before, latency, method="POST", route="/api/search")) == searches + workers
        assert value(after, "lookalike_index_items") == clients[0].get("/api/stats").json()["items"]
        assert value(after, "lookalike_micro_batch_size_count", batcher="embed") >= searches
    finally:
        server.stop()


def test_request_ids_reach_the_answer_and_every_json_log_line(home, tmp_path, query_dir):
    server = Server(home, 1, tmp_path / "server.log", log_format="json", access_log="true")
    try:
        client = server.clients(1)[0]
        given = client.get("/api/stats", headers={"X-Request-Id": "trace-42"})
        assert given.headers["x-request-id"] == "trace-42"
        made = client.get("/api/stats")
        assert len(made.headers["x-request-id"]) == 32
        assert client.get("/api/stats", headers={"X-Request-Id": "no spaces ok?"}).headers["x-request-id"] != (
            "no spaces ok?")
        added = client.post("/api/items", files={"files": ("new.jpg", jpeg("stripes", 77), "image/jpeg")},
                            data={"category": "stripes"}, headers={**AUTH, "X-Request-Id": "write-1"})
        assert added.status_code in (200, 201), added.text
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.log_lines() if line.startswith("{")]
    assert lines, server.log.read_text()[-2000:]
    by_id: dict[str, list[dict]] = {}
    for line in lines:
        assert {"time", "level", "logger", "message", "request_id"} <= set(line)
        by_id.setdefault(line["request_id"], []).append(line)
    assert [line["route"] for line in by_id["trace-42"] if line["logger"] == "lookalike.access"] == ["/api/stats"]
    assert made.headers["x-request-id"] in by_id
    write_lines = by_id["write-1"]
    assert any(line.get("key", "").startswith("key-") and TOKEN not in json.dumps(line) for line in write_lines)
    assert any(line["logger"] == "lookalike.access" and line["status"] in (200, 201) for line in write_lines)


def test_a_rate_limit_holds_for_the_server_as_a_whole(home, tmp_path, query_dir):
    server = Server(home, 2, tmp_path / "server.log", search_rate="0.05", search_burst="4")
    try:
        clients = server.clients(2)
        data = next(query_dir.rglob("*.jpg")).read_bytes()
        codes = [clients[i % 2].post("/api/search?k=2", content=data, headers={"Content-Type": "image/jpeg"})
                 for i in range(10)]
        assert [c.status_code for c in codes].count(200) == 4, [c.status_code for c in codes]
        refused = [c for c in codes if c.status_code == 429]
        assert len(refused) == 6 and all(int(c.headers["retry-after"]) >= 1 for c in refused)
        assert clients[0].get("/api/stats").status_code == 200  # not a search: not limited
    finally:
        server.stop()
