"""`lookalike serve --workers 2`: several processes answer, and a change made through one is seen by all."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from pydantic import SecretStr

from apiserver import TOKEN, ingested
from imagegen import make_image

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def jpeg(category: str, seed: int) -> bytes:
    buffer = io.BytesIO()
    make_image(category, seed).save(buffer, format="JPEG")
    return buffer.getvalue()


def start_server(settings, *extra: str) -> tuple[str, subprocess.Popen[bytes]]:
    """A real `lookalike serve` over ``settings.home`` on a free port, answering health checks."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "LOOKALIKE_HOME": str(settings.home), "LOOKALIKE_MODELS_DIR": str(settings.models_dir),
           "LOOKALIKE_API_TOKEN": TOKEN, "LOOKALIKE_BATCH_SIZE": "8"}
    server = subprocess.Popen([sys.executable, "-m", "lookalike.cli", "serve", "--port", str(port), *extra],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if server.poll() is not None:
            raise AssertionError(server.stderr.read().decode()[-2000:])  # type: ignore[union-attr]
        try:
            if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                return base, server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.kill()
            raise AssertionError("the server did not start")
        time.sleep(0.2)


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait(60)


@pytest.fixture
def two_workers(settings, catalog_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    ingested(settings.model_copy(update={"api_token": SecretStr(TOKEN)}), catalog_dir)
    base, server = start_server(settings, "--workers", "2")
    try:
        yield base, server
    finally:
        stop(server)


def one_client_per_worker(base: str, workers: int) -> dict[int, httpx.Client]:
    """Keep-alive clients, one bound to each worker process (a connection stays with the worker that took it)."""
    clients: dict[int, httpx.Client] = {}
    for _ in range(200):
        client = httpx.Client(base_url=base, timeout=30)
        pid = client.get("/api/health").json()["worker"]
        if pid in clients:
            client.close()
        else:
            clients[pid] = client
        if len(clients) == workers:
            return clients
    raise AssertionError(f"only {len(clients)} of {workers} workers answered 200 new connections")


def search(client: httpx.Client, data: bytes) -> list[int]:
    response = client.post("/api/search", files={"file": ("q.jpg", data, "image/jpeg")}, data={"k": "3"})
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["results"]]


def test_every_worker_sees_a_change_made_through_another(two_workers) -> None:
    base, server = two_workers
    clients = one_client_per_worker(base, 2)
    children = set(map(int, Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()))
    assert set(clients) <= children, "the answering processes are the server's workers"
    check_changes_are_shared(clients)
    assert next(iter(clients)) in children
    for client in clients.values():
        client.close()


def test_separate_single_worker_servers_on_one_home_share_changes(settings, catalog_dir: Path) -> None:
    """The documented alternative to --workers: N `lookalike serve` processes on one home (behind a balancer)."""
    ingested(settings.model_copy(update={"api_token": SecretStr(TOKEN)}), catalog_dir)
    servers = [start_server(settings)]
    try:
        servers.append(start_server(settings))  # one after the other: each reconciles the index as it opens
        clients = {server.pid: httpx.Client(base_url=base, timeout=30) for base, server in servers}
        check_changes_are_shared(clients)
        for client in clients.values():
            client.close()
    finally:
        for _, server in servers:
            stop(server)


def check_changes_are_shared(clients: dict[int, httpx.Client]) -> None:
    """An add and a delete through one client are seen through every other, and no save is lost."""
    (_, writer), (_, other) = list(clients.items())[:2]
    before = writer.get("/api/health").json()["items"]
    query = jpeg("circles", 4242)

    added = writer.post("/api/items", headers=AUTH, data={"category": "circles"},
                        files=[("files", ("new.jpg", query, "image/jpeg"))])
    assert added.status_code == 201, added.text
    new = added.json()["items"][0]["id"]
    for pid, client in clients.items():
        assert search(client, query)[0] == new, f"worker {pid} does not find the item another worker added"
        assert client.get("/api/health").json()["items"] == before + 1

    assert other.delete(f"/api/items/{new}", headers=AUTH).status_code == 204
    for pid, client in clients.items():
        assert new not in search(client, query), f"worker {pid} still returns an item deleted through another"
        assert client.get("/api/health").json()["items"] == before

    again = writer.post("/api/items", headers=AUTH,
                        files=[("files", ("again.jpg", jpeg("stripes", 4343), "image/jpeg"))])
    assert again.status_code == 201  # the writer started from the other worker's save, so nothing was lost
    assert all(client.get("/api/health").json()["items"] == before + 1 for client in clients.values())


def test_several_workers_refuse_a_milvus_lite_file(settings) -> None:
    env = {**os.environ, "LOOKALIKE_HOME": str(settings.home), "LOOKALIKE_MODELS_DIR": str(settings.models_dir),
           "LOOKALIKE_VECTOR_STORE": "milvus"}
    result = subprocess.run([sys.executable, "-m", "lookalike.cli", "serve", "--workers", "2"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Milvus Lite" in result.stderr


def test_connections_are_dealt_to_the_workers_in_turn(two_workers) -> None:
    base, server = two_workers
    deadline = time.monotonic() + 60
    while not both_answer(base):  # the second worker may still be starting
        assert time.monotonic() < deadline, "the second worker never answered"
        time.sleep(0.5)
    clients = [httpx.Client(base_url=base, timeout=30) for _ in range(8)]
    pids = [client.get("/api/health").json()["worker"] for client in clients]
    for client, pid in zip(clients, pids, strict=True):  # each connection stays with its worker
        assert client.get("/api/health").json()["worker"] == pid
        client.close()
    assert len(set(pids)) == 2 and set(pids) <= children_of(server.pid)
    assert all(a != b for a, b in zip(pids, pids[1:], strict=False)), pids  # alternating: 4 and 4


def test_workers_stop_when_the_parent_is_killed(two_workers) -> None:
    _, server = two_workers
    workers = children_of(server.pid)  # the two workers and multiprocessing's resource tracker
    kill_and_wait_for_children(server, workers)


def test_workers_still_starting_stop_when_the_parent_is_killed(settings, catalog_dir: Path) -> None:
    ingested(settings, catalog_dir)
    env = {**os.environ, "LOOKALIKE_HOME": str(settings.home), "LOOKALIKE_MODELS_DIR": str(settings.models_dir)}
    server = subprocess.Popen([sys.executable, "-m", "lookalike.cli", "serve", "--port", "0", "--workers", "2"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    # two workers inside Lookalike's start-up (loading NumPy and the models), none ready yet; a child killed before
    # multiprocessing handed it its task (a few ms after its spawn) would print CPython's own EOFError instead
    while len(loading(workers := children_of(server.pid))) < 2:
        assert server.poll() is None and time.monotonic() < deadline, "the workers were never started"
        time.sleep(0.05)
    kill_and_wait_for_children(server, workers)
    assert b"Traceback" not in server.stderr.read()  # type: ignore[union-attr]


def kill_and_wait_for_children(server: subprocess.Popen[bytes], children: set[int]) -> None:
    """Kill the server's parent process; fail unless every one of ``children`` exits within 30 s."""
    server.kill()
    server.wait(10)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() and "Z" not in process_state(pid) for pid in children):
        assert time.monotonic() < deadline, "workers outlived their parent"
        time.sleep(0.2)


def children_of(pid: int) -> set[int]:
    return set(map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split()))


def loading(pids: set[int]) -> set[int]:
    """Those of ``pids`` that have mapped NumPy: past multiprocessing's hand-over, into the worker's own start-up."""
    found = set()
    for pid in pids:
        try:
            if "numpy" in Path(f"/proc/{pid}/maps").read_text():
                found.add(pid)
        except OSError:
            pass
    return found


def process_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def both_answer(base: str) -> bool:
    """Whether two fresh connections in a row reach two different workers."""
    pids = set()
    for _ in range(2):
        with httpx.Client(base_url=base, timeout=30) as client:
            pids.add(client.get("/api/health").json()["worker"])
    return len(pids) == 2
