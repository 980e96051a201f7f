from lookalike.catalog.repository import Catalog, NewItem


def catalog(tmp_path) -> Catalog:
    return Catalog(f"sqlite:///{tmp_path / 'db' / 'catalog.db'}")


def test_add_get_and_count(tmp_path):
    db = catalog(tmp_path)
    ids = db.add_items([NewItem("/a.png", "h1", "shirt", "SKU1", {"price": 3}), NewItem("/b.png", "h2")], "m@1")
    assert len(ids) == 2 and ids[0] < ids[1]
    item = db.get_item(ids[0])
    assert item is not None
    assert (item.path, item.category, item.item_id, item.metadata, item.model_version) == (
        "/a.png", "shirt", "SKU1", {"price": 3}, "m@1")
    assert db.count() == 2
    assert db.category_counts() == {"shirt": 1, None: 1}
    assert db.known_paths(["/a.png", "/c.png"]) == {"/a.png"}


def test_ids_are_never_reused_after_delete(tmp_path):
    db = catalog(tmp_path)
    first = db.add_items([NewItem("/a.png", "h1"), NewItem("/b.png", "h2")], "m")
    assert db.delete_items([first[1]]) == 1
    again = db.add_items([NewItem("/c.png", "h3")], "m")
    assert again[0] > first[1]
    assert db.ids() == [first[0], again[0]]


def test_iter_items_pages_through_everything(tmp_path):
    db = catalog(tmp_path)
    db.add_items([NewItem(f"/{i}.png", str(i)) for i in range(25)], "m")
    assert [r.path for r in db.iter_items(batch=7)] == [f"/{i}.png" for i in range(25)]


def test_search_history_newest_first(tmp_path):
    db = catalog(tmp_path)
    db.record_search("q1.jpg", 5, None, 12.5, [{"id": 1, "score": 0.9}])
    db.record_search("q2.jpg", 3, "shirt", 8.0, [])
    recent = db.recent_searches()
    assert [s.query for s in recent] == ["q2.jpg", "q1.jpg"]
    assert recent[1].results == [{"id": 1, "score": 0.9}]


def test_data_survives_reopening(tmp_path):
    db = catalog(tmp_path)
    db.add_items([NewItem("/a.png", "h1", "shirt")], "m")
    db.close()
    assert catalog(tmp_path).count() == 1
