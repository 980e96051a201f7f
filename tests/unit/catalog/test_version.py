"""The catalog's version as every search reads it first (``catalog.changes.VersionReader``): it moves with another
process's change, and a connection the database dropped is replaced (SQLite and PostgreSQL)."""

import pytest
from sqlalchemy import text

from lookalike.catalog.repository import Catalog, NewItem


def test_the_version_moves_with_another_connections_change(database_url):
    ours, theirs = Catalog(database_url), Catalog(database_url)  # as two server workers
    assert ours.version() == 0
    ids = theirs.add_items([NewItem("/a.png", "h1", "shirt")], "m")
    assert ours.version() == theirs.version() == 1
    theirs.update_attributes([(ids[0], "shirt", {"price": 4})])
    assert ours.version() == 2
    ours.add_items([NewItem("/b.png", "h2", "dress")], "m")
    assert theirs.version() == ours.version() == 3
    assert ours.attributes.version() == 3  # filters read the same version
    ours.close()
    theirs.close()


def test_a_connection_the_server_closed_is_replaced(postgres):
    catalog = Catalog(postgres.new_database())
    catalog.add_items([NewItem("/a.png", "h1")], "m")
    assert catalog.version() == 1
    with catalog.engine.connect() as connection:  # the server ends every other session, the held one too
        ended = connection.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
    assert ended >= 1
    assert catalog.version() == 1
    catalog.add_items([NewItem("/b.png", "h2")], "m")
    assert catalog.version() == 2
    catalog.close()


def test_a_database_that_is_gone_is_an_error_not_a_stale_version(tmp_path):
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    assert catalog.version() == 0
    catalog.engine.dispose()
    with catalog.engine.begin() as connection:
        connection.execute(text("DROP TABLE catalog_state"))
    with pytest.raises(Exception, match="catalog_state"):
        catalog.version()
    catalog.close()
