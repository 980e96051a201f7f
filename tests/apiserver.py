"""Helpers for API tests: the token, an ingested home, and a real uvicorn server in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from lookalike.bootstrap import open_engine
from lookalike.config import Settings
from lookalike.data.sources import open_source
from lookalike.ingest import ingest

TOKEN = "s3cret-token"


def ingested(settings: Settings, catalog_dir: Path) -> Settings:
    """``settings`` after ingesting the generated catalog into their home."""
    engine = open_engine(settings)
    ingest(engine, open_source(catalog_dir))
    engine.close()
    return settings


@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with a real uvicorn server on a free localhost port, in a thread; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
