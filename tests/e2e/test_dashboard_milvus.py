"""The dashboard's search on the scale-out stack: Milvus Lite for the index, PostgreSQL for the catalog."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urljoin

import pytest
from test_dashboard import assert_ranked, browser, page, queries, search, server, shot  # noqa: F401 - fixtures

from lookalike.config import Settings

from apiserver import ingested
from imagegen import CATEGORIES


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, extractor, catalog_dir: Path,
                    postgres) -> Settings:
    settings = Settings(home=tmp_path_factory.mktemp("dashboard-milvus") / "home", models_dir=models_dir,
                        batch_size=8, checkpoint_every=8, vector_store="milvus",
                        database_url=postgres.new_database(), _env_file=None)  # type: ignore[call-arg]
    return ingested(settings, catalog_dir)


def test_search_results_in_the_dashboard_come_from_milvus(page, queries, server_settings):  # noqa: F811
    for category in CATEGORIES:
        found = search(page, queries[category], k=5)
        assert_ranked(found, 5)
        assert found[0]["category"] == category
    filtered = search(page, queries[CATEGORIES[0]], k=3, category=CATEGORIES[1])
    assert {c["category"] for c in filtered} == {CATEGORIES[1]}
    shot(page, "dashboard-milvus-postgres")
    stats = page.request.get(urljoin(page.url, "/api/stats")).json()  # the page's address carries its search
    assert stats["index"]["type"] == "milvus:HNSW" and stats["items"] == 18
