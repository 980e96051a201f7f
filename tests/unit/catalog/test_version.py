"""The catalog's version as every search reads it first (``catalog.changes.VersionReader``): it moves with another
process's change, and a connection the database dropped is replaced (SQLite and PostgreSQL)."""

import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from lookalike import beacon
from lookalike.catalog.products import ProductChange
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


def test_one_transaction_is_one_version_that_names_everything_it_changed(database_url):
    catalog = Catalog(database_url)
    catalog.products.apply([ProductChange("SKU-1", "dress", {"price": 1}, ["http://x/1.jpg"],
                                          [NewItem("/p1.jpg", "p1", "dress", sku="SKU-1")])], "m")
    before = catalog.version()
    shown = catalog.products.item_ids(["SKU-1"])
    added = catalog.products.apply([  # new images replace the old ones: items deleted, added, attributes written
        ProductChange("SKU-1", "dress", {"price": 2}, ["http://x/2.jpg"],
                      [NewItem("/p2.jpg", "p2", "dress", sku="SKU-1")], replaced=shown),
        ProductChange("SKU-2", "coat", {"price": 3}, [])], "m")
    assert catalog.version() == before + 1
    changed = catalog.changes_between(before, before + 1)
    assert changed is not None
    assert changed.items == {*shown, *added["SKU-1"]} and changed.skus == {"SKU-1", "SKU-2"}
    catalog.products.delete(["SKU-1", "SKU-2"])
    assert catalog.version() == before + 2
    catalog.close()


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


def test_a_database_that_is_gone_is_an_error_not_a_stale_version(tmp_path, monkeypatch):
    monkeypatch.setattr(beacon, "RECHECK_S", 0.05)
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    assert catalog.version() == 0
    catalog.engine.dispose()
    with catalog.engine.begin() as connection:
        connection.execute(text("DROP TABLE catalog_state"))
    time.sleep(0.1)  # dropped behind Lookalike's back (no beacon signal): seen within RECHECK_S
    with pytest.raises(Exception, match="catalog_state"):
        catalog.version()
    catalog.close()


def test_a_sqlite_catalog_asks_its_database_only_when_a_writer_signalled(tmp_path):
    """Searches read the version from the beacon's memory while no writer signalled; a change by another process,
    through Lookalike, moves it at once."""
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    ours = Catalog(url)
    assert ours.version() == 0
    with ours.engine.begin() as connection:  # behind Lookalike's back: no signal, so not asked for yet
        connection.execute(text("UPDATE catalog_state SET version = 41 WHERE id = 1"))
        connection.execute(text("INSERT INTO catalog_state (id, version) SELECT 1, 41 WHERE NOT EXISTS "
                                "(SELECT 1 FROM catalog_state)"))
    assert ours.version() == 0
    subprocess.run([sys.executable, "-c", "import sys; from lookalike.catalog.repository import Catalog, NewItem; "
                    "Catalog(sys.argv[1]).add_items([NewItem('/a.png', 'h1', 'shirt')], 'm')", url], check=True)
    assert ours.version() == 42  # the other process's commit signalled: read again, its change and the hidden one
    ours.close()


def test_other_databases_are_asked_every_time(postgres):
    catalog = Catalog(postgres.new_database())
    assert catalog.version() == 0
    with catalog.engine.begin() as connection:
        connection.execute(text("INSERT INTO catalog_state (id, version) VALUES (1, 7)"))
    assert catalog.version() == 7  # another machine's server may have changed it: no beacon to trust
    catalog.close()
