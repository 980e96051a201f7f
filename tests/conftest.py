"""Shared fixtures: the exported backbone (once per machine, in pytest's cache), generated catalogs,
and Settings pointing at a temporary home."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from lookalike.backbone.runtime import FeatureExtractor, load_backbone  # noqa: E402
from lookalike.config import Settings  # noqa: E402

from imagegen import write_catalog, write_product_catalog  # noqa: E402
from pgserver import PostgresServer, start_server  # noqa: E402


@pytest.fixture(scope="session")
def models_dir(pytestconfig: pytest.Config) -> Path:
    """Exported ONNX models, kept in pytest's cache so only the first run pays for the export."""
    return Path(pytestconfig.cache.mkdir("lookalike-models"))


@pytest.fixture(scope="session")
def extractor(models_dir: Path) -> FeatureExtractor:
    return load_backbone("efficientnet-lite0", models_dir)


@pytest.fixture(scope="session")
def catalog_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated catalog: 3 categories x 6 PNG images, category = sub-folder."""
    root = tmp_path_factory.mktemp("catalog")
    write_catalog(root, per_category=6)
    return root


@pytest.fixture(scope="session")
def product_catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[set[str]]]:
    """Garment-shaped products (3 categories x 12, 320 px) with 5 planted copies; returns (folder, the file names
    of each planted group)."""
    root = tmp_path_factory.mktemp("products")
    return root, write_product_catalog(root, per_category=12)


@pytest.fixture(scope="session")
def query_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Query images not in the catalog, same categories, as JPEG."""
    root = tmp_path_factory.mktemp("queries")
    write_catalog(root, per_category=2, fmt="JPEG", start=100)
    return root


@pytest.fixture
def settings(tmp_path: Path, models_dir: Path) -> Settings:
    return Settings(home=tmp_path / "home", models_dir=models_dir, batch_size=8, checkpoint_every=8,
                    decode_workers=2, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session (see tests/pgserver.py)."""
    server = start_server()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty catalog database: a SQLite file, then a fresh database on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'catalog.db'}"
    return request.getfixturevalue("postgres").new_database()
