"""The catalog database, on SQLite and on a real PostgreSQL server alike."""

import pytest

from lookalike.catalog.repository import Catalog, NewItem


def catalog(url: str) -> Catalog:
    return Catalog(url)


def test_add_get_and_count(database_url):
    db = catalog(database_url)
    ids = db.add_items([NewItem("/a.png", "h1", "shirt", "SKU1", {"price": 3}), NewItem("/b.png", "h2")], "m@1")
    assert len(ids) == 2 and ids[0] < ids[1]
    item = db.get_item(ids[0])
    assert item is not None
    assert (item.path, item.category, item.item_id, item.metadata, item.model_version) == (
        "/a.png", "shirt", "SKU1", {"price": 3}, "m@1")
    assert db.count() == 2
    assert db.category_counts() == {"shirt": 1, None: 1}
    assert db.known_paths(["/a.png", "/c.png"]) == {"/a.png"}


def test_ids_are_never_reused_after_delete(database_url):
    db = catalog(database_url)
    first = db.add_items([NewItem("/a.png", "h1"), NewItem("/b.png", "h2")], "m")
    assert db.delete_items([first[1]]) == 1
    again = db.add_items([NewItem("/c.png", "h3")], "m")
    assert again[0] > first[1]
    assert db.ids() == [first[0], again[0]]


def test_iter_items_pages_through_everything(database_url):
    db = catalog(database_url)
    db.add_items([NewItem(f"/{i}.png", str(i)) for i in range(25)], "m")
    assert [r.path for r in db.iter_items(batch=7)] == [f"/{i}.png" for i in range(25)]


def test_search_history_newest_first(database_url):
    db = catalog(database_url)
    db.record_search("q1.jpg", 5, None, 12.5, [{"id": 1, "score": 0.9}])
    db.record_search("q2.jpg", 3, "shirt", 8.0, [])
    recent = db.recent_searches()
    assert [s.query for s in recent] == ["q2.jpg", "q1.jpg"]
    assert recent[1].results == [{"id": 1, "score": 0.9}]


def test_data_survives_reopening(database_url):
    db = catalog(database_url)
    db.add_items([NewItem("/a.png", "h1", "shirt")], "m")
    db.close()
    assert catalog(database_url).count() == 1


def test_unicode_metadata_and_full_length_hashes_round_trip(database_url):
    db = catalog(database_url)
    digest = "f" * 40
    ids = db.add_items([NewItem("/ünï/çødé.png", digest, "robe d'été", "SKU-é", {"tags": ["é", 1], "n": None})], "m")
    item = db.get_items(ids)[ids[0]]
    assert (item.path, item.content_hash, item.category, item.metadata) == (
        "/ünï/çødé.png", digest, "robe d'été", {"tags": ["é", 1], "n": None})
    assert db.get_items_by_paths(["/ünï/çødé.png"])[0].id == ids[0]


def test_set_model_version_updates_only_the_given_items(database_url):
    db = catalog(database_url)
    ids = db.add_items([NewItem(f"/{i}.png", str(i)) for i in range(3)], "old")
    db.set_model_version(ids[:2], "new")
    assert [r.model_version for r in db.iter_items()] == ["new", "new", "old"]


def test_missing_postgres_binaries_fail_the_tests_unless_opted_out(monkeypatch):
    import pgserver

    monkeypatch.setattr(pgserver, "find_bin_dir", lambda: None)
    monkeypatch.delenv(pgserver.SKIP_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception, match="apt-get install postgresql"):
        pgserver.start_server()
    monkeypatch.setenv(pgserver.SKIP_ENV, "1")
    with pytest.raises(pytest.skip.Exception):
        pgserver.start_server()
