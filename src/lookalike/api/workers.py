"""Several server processes on one port: the parent accepts connections and deals them out in turn.

A keep-alive connection stays with the process that took it, so how connections are spread is how load is
spread. With one listening socket shared by every process (uvicorn's ``--workers``), whichever process the kernel
wakes first accepts: in one measured run a single worker took 4,284 of the 4,500 searches arriving on 64
connections, and its queue made the tail. A ``SO_REUSEPORT`` socket per process spreads connections by a hash of
their addresses, which still left splits of 66/34 at times (BENCHMARKS.md). Here the parent accepts every
connection and passes it (``SCM_RIGHTS``) to the next ready worker in turn, so N connections split as evenly as
N allows; the parent never touches a byte of a request.

A worker stops when the parent dies: its channel closes, and on Linux the kernel also sends it SIGTERM
(``PR_SET_PDEATHSIG``), which reaches a worker that is still starting and not yet reading its channel.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from lookalike.allocator import return_large_blocks
from lookalike.metrics import MULTIPROCESS_DIR, process_gone

log = logging.getLogger(__name__)

APP = "lookalike.api.main:worker_app"
EARLY_EXIT_S = 20.0  # a worker that dies this soon after starting is failing, not crashing: stop, do not loop
READY = b"r"  # a worker's message to the parent: it serves connections from now on
CONNECTION = b"c"  # the parent's message to a worker, with the connection's file descriptor attached


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on (host, port); raises OSError when it cannot bind."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    return sock


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _worker(channel: socket.socket, parent: int) -> None:
    _terminate_with_parent(parent)
    return_large_blocks()
    # uvicorn's loggers go through the root logger the app configures (its format, the request ids)
    _PassedConnectionsServer(uvicorn.Config(APP, factory=True, log_level="warning", log_config=None,
                                            access_log=False), channel).run()


def _terminate_with_parent(parent: int) -> None:
    """Have the kernel send this process SIGTERM when its parent dies (Linux); exit now if it already has."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before prctl took effect
        sys.exit(0)


class _PassedConnectionsServer(uvicorn.Server):
    """uvicorn serving the connections the parent passes over ``channel``, with no listening socket of its own.
    It stops when the parent goes away (the channel closes)."""

    def __init__(self, config: Any, channel: socket.socket) -> None:
        super().__init__(config)
        self.channel = channel
        self._opening: set[asyncio.Task[Any]] = set()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])
        if self.should_exit:
            return
        loop = asyncio.get_running_loop()
        config = self.config

        def protocol() -> asyncio.Protocol:  # as uvicorn makes one per accepted connection (uvicorn pinned: 0.54)
            return config.http_protocol_class(config=config, server_state=self.server_state,  # type: ignore[call-arg]
                                              app_state=self.lifespan.state)

        def receive() -> None:
            try:
                message, fds, _, _ = socket.recv_fds(self.channel, 16, 64)
            except BlockingIOError:
                return
            if not message:  # the parent is gone
                loop.remove_reader(self.channel.fileno())
                self.should_exit = True
                return
            for fd in fds:
                task = loop.create_task(loop.connect_accepted_socket(protocol, socket.socket(fileno=fd)))
                self._opening.add(task)
                task.add_done_callback(self._opening.discard)

        try:
            self.channel.send(READY)
        except OSError:  # the parent is gone already
            self.should_exit = True
            return
        self.channel.setblocking(False)
        loop.add_reader(self.channel.fileno(), receive)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.channel.fileno() >= 0:
            asyncio.get_running_loop().remove_reader(self.channel.fileno())
        await super().shutdown(sockets=sockets)


@dataclass
class _Worker:
    process: BaseProcess
    channel: socket.socket  # the parent's end
    started: float = field(default_factory=time.monotonic)
    ready: bool = False


def run_workers(host: str, port: int, workers: int) -> int:
    """Serve with ``workers`` processes until SIGINT or SIGTERM; a worker that dies is started again. Returns the
    exit status: 0, or 1 when a worker failed right after starting. Raises OSError when the port is taken."""
    listener = listening_socket(host, port)
    listener.setblocking(False)
    runtime = shared_runtime_dir()
    context = multiprocessing.get_context("spawn")
    selector = selectors.DefaultSelector()
    stopping = False
    turn = 0

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    def start() -> _Worker:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        process = context.Process(target=_worker, args=(theirs, os.getpid()), name="lookalike-worker", daemon=False)
        process.start()
        theirs.close()
        ours.setblocking(False)
        worker = _Worker(process, ours)
        selector.register(ours, selectors.EVENT_READ, worker)
        return worker

    def retire(worker: _Worker) -> None:
        """Stop listening to a worker that is exiting (its channel closed) or gone."""
        worker.ready = False
        if worker.channel.fileno() in selector.get_map():
            selector.unregister(worker.channel)

    def hand_over(connection: socket.socket) -> None:
        """Pass ``connection`` to the next ready worker in turn (closed if none can take it)."""
        nonlocal turn
        for _ in range(len(running)):
            worker = running[turn % len(running)]
            turn += 1
            if not worker.ready:
                continue
            try:
                socket.send_fds(worker.channel, [CONNECTION], [connection.fileno()])
                break
            except OSError:  # its queue is full, or it just died: the next one
                continue
        connection.close()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    running = [start() for _ in range(workers)]
    accepting = False
    status = 0
    try:
        while not stopping:
            if not accepting and any(w.ready for w in running):
                selector.register(listener, selectors.EVENT_READ)
                accepting = True
            for key, _ in selector.select(0.5):
                if key.fileobj is listener:
                    while True:
                        try:
                            connection, _ = listener.accept()
                        except (BlockingIOError, InterruptedError):
                            break
                        hand_over(connection)
                elif key.data.channel.recv(16) == READY:
                    key.data.ready = True
                else:  # the worker closed its end: it is exiting
                    retire(key.data)
            for i, worker in enumerate(running):
                if worker.process.is_alive():
                    continue
                retire(worker)
                worker.channel.close()
                if time.monotonic() - worker.started < EARLY_EXIT_S:
                    log.error("a server worker exited (status %s) right after starting; stopping",
                              worker.process.exitcode)
                    status, stopping = 1, True
                    break
                log.warning("server worker %s exited (status %s); starting another", worker.process.pid,
                            worker.process.exitcode)
                if worker.process.pid is not None:
                    process_gone(worker.process.pid)
                running[i] = start()
    finally:
        listener.close()
        for worker in running:
            worker.process.terminate()
        for worker in running:
            worker.process.join(30)
            if worker.process.is_alive():
                worker.process.kill()
            worker.channel.close()
        selector.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for name in (RUNTIME_DIR, MULTIPROCESS_DIR):
            os.environ.pop(name, None)
        shutil.rmtree(runtime, ignore_errors=True)
    return status


RUNTIME_DIR = "LOOKALIKE_RUNTIME_DIR"


def shared_runtime_dir() -> Path:
    """A fresh folder the workers share for the server's metrics (``prometheus-client``'s multiprocess files) and
    rate limits, named in the environment they start with."""
    runtime = Path(tempfile.mkdtemp(prefix="lookalike-run-"))
    (runtime / "metrics").mkdir()
    os.environ[RUNTIME_DIR] = str(runtime)
    os.environ[MULTIPROCESS_DIR] = str(runtime / "metrics")
    return runtime
