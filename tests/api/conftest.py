from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from lookalike.api.main import create_app
from lookalike.data.sources import open_source
from lookalike.engine import open_engine
from lookalike.ingest import ingest

TOKEN = "s3cret-token"


@pytest.fixture(params=["faiss+sqlite", "milvus+postgresql"])
def api_settings(request, settings):
    """Every API test runs on the embedded default and on the scale-out stack (Milvus Lite, PostgreSQL)."""
    update: dict[str, object] = {"api_token": SecretStr(TOKEN)}
    if request.param == "milvus+postgresql":
        update |= {"vector_store": "milvus", "database_url": request.getfixturevalue("postgres").new_database()}
    return settings.model_copy(update=update)


@pytest.fixture
def client(api_settings, catalog_dir):
    engine = open_engine(api_settings)
    ingest(engine, open_source(catalog_dir))
    engine.close()
    with TestClient(create_app(api_settings)) as test_client:
        yield test_client


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}
