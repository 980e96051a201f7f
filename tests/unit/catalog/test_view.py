"""The in-memory view a search reads: it answers as the database does, and sees another process's change at the next
refresh (SQLite and PostgreSQL)."""

import time

from sqlalchemy import delete, event, update

from lookalike import beacon
from lookalike.catalog.changes import bump
from lookalike.catalog.models import CatalogChange, CatalogState
from lookalike.catalog.products import ProductChange
from lookalike.catalog.repository import Catalog, NewItem
from lookalike.catalog.view import CatalogView


def test_the_view_answers_from_memory_until_the_catalog_changes(database_url):
    ours, theirs = Catalog(database_url), Catalog(database_url)  # two connections, as two server workers
    ids = ours.add_items([NewItem("/a.png", "h1", "shirt", "A", {"price": 3}), NewItem("/b.png", "h2", "dress")], "m")
    view = CatalogView(ours)
    view.refresh()
    first = view.items([ids[0], ids[1], 999_999])
    assert set(first) == set(ids) and first[ids[0]].metadata == {"price": 3}
    assert first == ours.get_items(ids)

    theirs.update_attributes([(ids[0], "A", {"price": 4})])
    assert view.items([ids[0]])[ids[0]].metadata == {"price": 3}  # remembered until the next refresh
    view.refresh()
    assert view.items([ids[0]])[ids[0]].metadata == {"price": 4}

    theirs.delete_items([ids[1]])
    view.refresh()
    assert view.items(ids) == {ids[0]: ours.get_items([ids[0]])[ids[0]]}
    added = theirs.add_items([NewItem("/c.png", "h3")], "m")
    view.refresh()
    assert set(view.items([*ids, *added])) == {ids[0], *added}


def test_products_attributes_follow_the_catalog_too(database_url):
    ours, theirs = Catalog(database_url), Catalog(database_url)
    theirs.products.apply([ProductChange("SKU-1", "dress", {"price": 10, "brand": "A"}, ["http://x/1.jpg"],
                                         [NewItem("/1.jpg", "h1", "dress", "SKU-1")])], "m")
    view = CatalogView(ours)
    view.refresh()
    assert view.product_attributes(["SKU-1", "nope"]) == {"SKU-1": {"price": 10, "brand": "A"}}
    theirs.products.apply([ProductChange("SKU-1", "dress", {"price": 8, "brand": "A"}, ["http://x/1.jpg"])], "m")
    view.refresh()
    assert view.product_attributes(["SKU-1"]) == {"SKU-1": {"price": 8, "brand": "A"}}


def test_a_full_view_starts_afresh(database_url):
    catalog = Catalog(database_url)
    ids = catalog.add_items([NewItem(f"/{i}.png", str(i)) for i in range(10)], "m")
    view = CatalogView(catalog, max_remembered=4)
    view.refresh()
    for i in ids:
        assert set(view.items([i])) == {i}
    assert set(view.items(ids[:3])) == set(ids[:3])


def _item_reads(catalog: Catalog) -> list[str]:
    """The statements that read item rows, as ``catalog`` sends them from now on."""
    reads: list[str] = []
    event.listen(catalog.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_: reads.append(statement) if "FROM items" in statement else None)
    return reads


def test_a_change_forgets_only_the_items_and_products_it_touched(database_url):
    ours, theirs = Catalog(database_url), Catalog(database_url)
    ids = ours.add_items([NewItem(f"/{i}.png", f"h{i}", "shirt", None, {"price": i}) for i in range(4)], "m")
    theirs.products.apply([ProductChange(f"SKU-{n}", "dress", {"price": n}, [f"http://x/{n}.jpg"],
                                         [NewItem(f"/p{n}.jpg", f"p{n}", "dress", f"SKU-{n}")]) for n in (1, 2)], "m")
    view = CatalogView(ours)
    view.refresh()
    view.items(ids)
    view.product_attributes(["SKU-1", "SKU-2"])
    reads = _item_reads(ours)

    theirs.update_attributes([(ids[0], None, {"price": 40})])
    theirs.products.apply([ProductChange("SKU-2", "dress", {"price": 20}, ["http://x/2.jpg"])], "m")
    view.refresh()
    assert view.items(ids[1:]) == ours.get_items(ids[1:]) and len(reads) == 1  # the unchanged: from memory
    reads.clear()
    assert view.items([ids[0]])[ids[0]].metadata == {"price": 40} and len(reads) == 1  # the changed: read again
    assert view.product_attributes(["SKU-1", "SKU-2"]) == {"SKU-1": {"price": 1}, "SKU-2": {"price": 20}}

    theirs.products.delete(["SKU-1"])
    added = theirs.add_items([NewItem("/new.png", "h-new", "shirt")], "m")
    view.refresh()
    assert view.product_attributes(["SKU-1", "SKU-2"]) == {"SKU-2": {"price": 20}}
    assert set(view.items([*ids, *added])) == {*ids, *added}


def test_a_change_of_anything_or_a_log_that_moved_on_forgets_everything(database_url, monkeypatch):
    monkeypatch.setattr(beacon, "RECHECK_S", 0.05)
    ours, theirs = Catalog(database_url), Catalog(database_url)
    ids = ours.add_items([NewItem(f"/{i}.png", f"h{i}") for i in range(3)], "m")
    view = CatalogView(ours)
    view.refresh()
    view.items(ids)
    reads = _item_reads(ours)
    theirs.set_model_version(ids[:1], "m2")
    view.refresh()
    view.items(ids)
    assert len(reads) == 1 and view.items(ids[:1])[ids[0]].model_version == "m2"  # only the first read again

    with theirs.session() as session, session.begin():
        bump(session, None)  # a change the log cannot name item by item
    reads.clear()
    view.refresh()
    view.items(ids)
    assert len(reads) == 1

    seen = theirs.version()
    with theirs.session() as session, session.begin():
        bump(session, [ids[0]])
        bump(session, [ids[0]])
        # the first of those trimmed, as if this view were further behind than the log keeps
        session.execute(delete(CatalogChange).where(CatalogChange.version == seen + 1))
    view.refresh()
    reads.clear()
    view.items(ids[1:])
    assert len(reads) == 1  # forgot everything: it could not tell what changed in between

    with theirs.session() as session, session.begin():
        session.execute(update(CatalogState).values(version=CatalogState.version - 5))  # another database's
    time.sleep(0.1)  # swapped in behind Lookalike's back (no beacon signal): seen within RECHECK_S
    view.refresh()
    reads.clear()
    view.items(ids[1:])
    assert len(reads) == 1  # a version that went back: nothing it read can be trusted
