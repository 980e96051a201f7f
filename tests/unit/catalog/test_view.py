"""The in-memory view a search reads: it answers as the database does, and sees another process's change at the next
refresh (SQLite and PostgreSQL)."""

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
