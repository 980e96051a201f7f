from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from lookalike.api.main import create_app
from lookalike.config import Settings

from apiserver import TOKEN, ingested, running


@pytest.fixture(params=["faiss+sqlite", "milvus+postgresql"])
def api_settings(request, settings):
    """Every API test runs on the embedded default and on the scale-out stack (Milvus Lite, PostgreSQL)."""
    update: dict[str, object] = {"api_token": SecretStr(TOKEN)}
    if request.param == "milvus+postgresql":
        update |= {"vector_store": "milvus", "database_url": request.getfixturevalue("postgres").new_database()}
    return settings.model_copy(update=update)


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


@pytest.fixture
def product_client(api_settings, product_catalog):
    """The API over the product catalog with planted duplicates."""
    with TestClient(create_app(ingested(api_settings, product_catalog[0]))) as test_client:
        yield test_client
