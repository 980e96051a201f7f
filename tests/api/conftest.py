from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from lookalike.api.main import create_app
from lookalike.data.sources import open_source
from lookalike.engine import open_engine
from lookalike.ingest import ingest

TOKEN = "s3cret-token"


@pytest.fixture
def api_settings(settings):
    return settings.model_copy(update={"api_token": SecretStr(TOKEN)})


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


@pytest.fixture
def product_client(api_settings, product_catalog):
    """The API over the product catalog with planted duplicates."""
    engine = open_engine(api_settings)
    ingest(engine, open_source(product_catalog[0]))
    engine.close()
    with TestClient(create_app(api_settings)) as test_client:
        yield test_client
