from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from lookalike.api.main import create_app
from lookalike.config import Settings
from lookalike.data.sources import open_source
from lookalike.engine import open_engine
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


@pytest.fixture
def api_settings(settings):
    return settings.model_copy(update={"api_token": SecretStr(TOKEN)})


@pytest.fixture
def client(api_settings, catalog_dir):
    with TestClient(create_app(ingested(api_settings, catalog_dir))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def live_settings(tmp_path_factory, models_dir, catalog_dir) -> Settings:
    """Settings over an ingested home shared by one test module (token set)."""
    home = tmp_path_factory.mktemp("live") / "home"
    settings = Settings(home=home, models_dir=models_dir, batch_size=8, checkpoint_every=8, decode_workers=2,
                        api_token=SecretStr(TOKEN), _env_file=None)  # type: ignore[call-arg]
    return ingested(settings, catalog_dir)


@pytest.fixture(scope="module")
def live_url(live_settings) -> Iterator[str]:
    """A real uvicorn server over ``live_settings``."""
    with running(create_app(live_settings)) as url:
        yield url


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}
