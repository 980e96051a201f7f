"""End-to-end latency of POST /api/search (JPEG upload to JSON) and throughput under concurrent load.

    python benchmarks/query_latency.py --home ~/.lookalike --requests 500 --clients 32 --seconds 30 --rate 150

Starts a real `lookalike serve` over an ingested home, then
1. sends ``--requests`` searches one at a time and reports p50/p95/p99;
2. closed loop: ``--clients`` clients search back to back for ``--seconds`` (the server's capacity), with
   server-side query micro-batching on and off, and with ``--workers`` server processes;
3. open loop: searches arrive at ``--rate`` per second (Poisson arrivals, fixed seed) for ``--seconds`` whatever
   the server's pace, on one server process and on ``--workers``; each latency counts from the request's arrival,
   so time spent waiting for a free connection is charged to the server (no coordinated omission).
Clients use keep-alive connections and pre-built request bodies, so the client costs little CPU. Each load run
also reports the server's CPU per search (all its processes) and how many cores it kept busy, and the part of
each search spent in the handler (``took_ms``: decoding, backbone, index, records) against the whole round trip.
"""

from __future__ import annotations

import argparse
import http.client
import json
import queue
import random
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from common import multipart, percentiles, process_tree_cpu, query_jpegs, server_process


class Client:
    """One keep-alive HTTP connection posting searches."""

    def __init__(self, base: str) -> None:
        url = urlparse(base)
        self.connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        self.handler_ms: list[float] = []  # the server's own ``took_ms`` of each answered search

    def search(self, body: bytes, content_type: str) -> tuple[float, int]:
        """(latency ms, status) of one search."""
        started = time.perf_counter()
        self.connection.request("POST", "/api/search", body=body, headers={"Content-Type": content_type})
        response = self.connection.getresponse()
        payload = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            return elapsed, response.status
        answer = json.loads(payload)
        self.handler_ms.append(answer["took_ms"])
        return elapsed, 200 if answer["results"] else 599  # an empty answer counts as an error

    def worker(self) -> int:
        """The pid of the server process that holds this connection (a keep-alive connection stays there)."""
        self.connection.request("GET", "/api/health")
        return int(json.loads(self.connection.getresponse().read())["worker"])


OPEN_LOOP_RUNS = 3


def bodies(n: int, k: int) -> list[tuple[bytes, str]]:
    return [multipart(data, {"k": str(k)}) for data in query_jpegs(n)]


def sequential(base: str, requests: list[tuple[bytes, str]], warmup: int = 10) -> dict[str, Any]:
    client = Client(base)
    for body in requests[:warmup]:
        client.search(*body)
    timings, errors = [], 0
    for body in requests:
        elapsed, status = client.search(*body)
        timings.append(elapsed)
        errors += status != 200
    return {"requests": len(timings), "errors": errors, **percentiles(timings)}


def server_use(server: int | None, clients: list[Client], cpu_before: float, elapsed: float,
               searches: int) -> dict[str, Any]:
    """The server's CPU per search and cores kept busy over the run, and its in-handler time percentiles."""
    handler = [ms for client in clients for ms in client.handler_ms]
    result = {f"handler_{key}": value for key, value in percentiles(handler).items() if key != "p95_ms"}
    if server is not None:
        cpu = process_tree_cpu(server) - cpu_before
        result |= {"server_cpu_ms_per_search": round(cpu * 1000 / max(searches, 1), 2),
                   "server_cores_busy": round(cpu / elapsed, 2)}
    return result


def load(base: str, requests: list[tuple[bytes, str]], clients: int, seconds: float,
         server: int | None = None) -> dict[str, Any]:
    """``clients`` threads searching back to back for ``seconds`` (``server``: its pid, to measure its CPU)."""
    timings: list[float] = []
    errors = [0]
    connections: list[Client] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker(offset: int) -> None:
        client = Client(base)
        with lock:
            connections.append(client)
        i = offset
        local, failed = [], 0
        while time.perf_counter() < stop:
            try:
                elapsed, status = client.search(*requests[i % len(requests)])
            except (OSError, http.client.HTTPException):
                client, elapsed, status = Client(base), 0.0, 0
                with lock:
                    connections.append(client)
            local.append(elapsed)
            failed += status != 200
            i += clients
        with lock:
            timings.extend(local)
            errors[0] += failed

    cpu_before = process_tree_cpu(server) if server is not None else 0.0
    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"clients": clients, "seconds": round(elapsed, 1), "requests": len(timings), "errors": errors[0],
            "queries_per_s": round(len(timings) / elapsed, 1), **percentiles(timings),
            **server_use(server, connections, cpu_before, elapsed, len(timings))}


def open_loop(base: str, requests: list[tuple[bytes, str]], rate: float, seconds: float,
              connections: int = 64, seed: int = 0, server: int | None = None) -> dict[str, Any]:
    """``rate * seconds`` searches arriving at random times over ``seconds`` (a Poisson process with exactly that
    many arrivals), sent over up to ``connections`` keep-alive connections; latency runs from each arrival to its
    response. ``queries_per_s`` is the completed searches over the arrival window, ``drain_s`` how long the last
    responses took after the last arrival (near 0 when the server keeps up), ``per_worker`` how the searches fell
    on the server processes (most first): each connection is opened, and asked its process, before the first
    arrival."""
    rng = random.Random(seed)
    arrivals = sorted(rng.uniform(0, seconds) for _ in range(round(rate * seconds)))
    pending: queue.SimpleQueue[tuple[float, int] | None] = queue.SimpleQueue()
    timings: list[float] = []
    errors = [0]
    lock = threading.Lock()
    per_worker: dict[int, int] = {}
    ready = threading.Barrier(connections + 1)
    clients: list[Client] = []

    def sender() -> None:
        client = Client(base)
        with lock:
            clients.append(client)
        try:
            worker = client.worker()
        finally:
            ready.wait()  # every connection open before the first arrival (or this one failed)
        while (job := pending.get()) is not None:
            arrived, i = job
            try:
                _, status = client.search(*requests[i % len(requests)])
            except (OSError, http.client.HTTPException):
                client, status = Client(base), 0
                with lock:
                    clients.append(client)
            elapsed = (time.perf_counter() - arrived) * 1000
            with lock:
                timings.append(elapsed)
                errors[0] += status != 200
                per_worker[worker] = per_worker.get(worker, 0) + 1

    threads = [threading.Thread(target=sender) for _ in range(connections)]
    for thread in threads:
        thread.start()
    ready.wait()
    cpu_before = process_tree_cpu(server) if server is not None else 0.0
    started = time.perf_counter()
    for i, offset in enumerate(arrivals):
        delay = started + offset - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        pending.put((started + offset, i))
    for _ in threads:
        pending.put(None)
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    drain = elapsed - seconds
    return {"rate": rate, "seconds": seconds, "drain_s": round(max(drain, 0.0), 2), "connections": connections,
            "requests": len(timings), "errors": errors[0], "queries_per_s": round(len(timings) / seconds, 1),
            "per_worker": sorted(per_worker.values(), reverse=True), **percentiles(timings),
            **server_use(server, clients, cpu_before, elapsed, len(timings))}


def catalog_size(base: str) -> int:
    client = Client(base)
    client.connection.request("GET", "/api/stats")
    return int(json.loads(client.connection.getresponse().read())["items"])


def run(home: Path, requests: int, clients: int, seconds: float, k: int = 5, rate: float = 0,
        workers: int = 2) -> dict[str, Any]:
    """Sequential latency, then (``clients``) closed-loop load with batching on/off and with ``workers``
    processes, then (``rate``) open-loop load on one process and on ``workers``."""
    request_bodies = bodies(max(requests, 50), k)
    result: dict[str, Any] = {"home": str(home), "k": k}
    setups = [("batching_on", {"query_batching": "true"}), ("batching_off", {"query_batching": "false"}),
              (f"workers_{workers}", {"workers": str(workers)})]
    for name, env in setups if clients or rate else setups[:1]:
        with server_process(home, **env) as (base, server):
            result["catalog_items"] = catalog_size(base)
            if name == "batching_on":
                result["sequential"] = sequential(base, request_bodies[:requests])
            if clients:
                load(base, request_bodies, clients, min(5.0, seconds))  # warm-up: every worker's first passes
                result[f"load_{name}"] = load(base, request_bodies, clients, seconds, server.pid)
            if rate and name != "batching_off":  # repeated: one run's tail depends on how connections fell
                result[f"open_loop_{name}"] = [open_loop(base, request_bodies, rate, seconds, seed=run,
                                                         server=server.pid) for run in range(OPEN_LOOP_RUNS)]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=150, help="Open-loop arrivals per second (0: skip).")
    parser.add_argument("--workers", type=int, default=2, help="Server processes of the multi-process runs.")
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(run(args.home, args.requests, args.clients, args.seconds, args.k, args.rate, args.workers),
                     indent=2))


if __name__ == "__main__":
    main()
