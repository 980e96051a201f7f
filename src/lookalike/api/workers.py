"""Several server processes on one port, each accepting connections on its own ``SO_REUSEPORT`` socket.

With one listening socket shared by every process (uvicorn's ``--workers``), whichever process the kernel wakes
first accepts: in one measured run a single worker took 4,284 of the 4,500 searches arriving on 64 keep-alive
connections, and its queue made the tail. With a socket per process the kernel spreads new connections over
them by a hash of their addresses (splits of 59/41, 50/50 and 56/44 in three runs; BENCHMARKS.md).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import time
from multiprocessing.process import BaseProcess
from types import FrameType

log = logging.getLogger(__name__)

APP = "lookalike.api.main:worker_app"
EARLY_EXIT_S = 20.0  # a worker that dies this soon after starting is failing, not crashing: stop, do not loop


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) that other processes may bind too (``SO_REUSEPORT``)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _worker(host: str, port: int) -> None:
    import uvicorn

    sock = reuseport_socket(host, port)
    sock.listen(2048)
    uvicorn.Server(uvicorn.Config(APP, factory=True, log_level="warning")).run(sockets=[sock])


def run_workers(host: str, port: int, workers: int) -> int:
    """Serve with ``workers`` processes until SIGINT or SIGTERM; a worker that dies is started again. Returns the
    exit status: 0, or 1 when a worker failed right after starting. Raises OSError when the port is taken."""
    reuseport_socket(host, port).close()  # the port is free (for this kind of socket): fail here, with a message
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    def start() -> tuple[BaseProcess, float]:
        process = context.Process(target=_worker, args=(host, port), name="lookalike-worker", daemon=False)
        process.start()
        return process, time.monotonic()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    running = [start() for _ in range(workers)]
    status = 0
    try:
        while not stopping:
            for i, (process, started) in enumerate(running):
                if process.is_alive():
                    continue
                if time.monotonic() - started < EARLY_EXIT_S:
                    log.error("a server worker exited (status %s) right after starting; stopping", process.exitcode)
                    status, stopping = 1, True
                    break
                log.warning("server worker %s exited (status %s); starting another", process.pid, process.exitcode)
                running[i] = start()
            time.sleep(0.5)
    finally:
        for process, _ in running:
            process.terminate()
        for process, _ in running:
            process.join(30)
            if process.is_alive():
                process.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
