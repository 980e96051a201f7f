"""Typed attributes in the catalog database, and the filters and facets answered from them."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.catalog.attributes import typed_values
from lookalike.catalog.products import ProductChange
from lookalike.catalog.repository import Catalog, NewItem
from lookalike.errors import InvalidRequestError
from lookalike.filters import AttributeIndex

ITEMS = [  # (category, metadata)
    ("Dress", {"price": 49.0, "brand": "Acme", "size": ["S", "M"], "in_stock": True, "released": "2026-01-10"}),
    ("Dress", {"price": 50.0, "brand": "acme", "size": ["L"], "in_stock": False, "released": "2025-12-31"}),
    ("Skirt", {"price": 12.5, "brand": "Other", "size": ["M"], "in_stock": True, "released": "2026-03-01T10:00Z"}),
    ("Coat", {"price": 199.0, "brand": "Other", "size": "XL", "in_stock": True, "note": "x" * 500}),
    ("Coat", {"brand": "Third", "position": 3, "filename": "a.jpg"}),
]


@pytest.fixture
def catalog(database_url: str) -> Catalog:
    catalog = Catalog(database_url)
    ids = catalog.add_items([NewItem(f"/img/{i}.jpg", f"h{i}", category, None, metadata)
                             for i, (category, metadata) in enumerate(ITEMS)], "m")
    assert ids == [1, 2, 3, 4, 5]
    yield catalog
    catalog.close()


def test_values_are_typed_and_lists_give_one_value_each():
    assert typed_values(True) == [("bool", 1.0, None)] and typed_values(3) == [("number", 3.0, None)]
    assert typed_values(["S", "M"]) == [("text", None, "S"), ("text", None, "M")]
    assert typed_values("2026-01-10")[0][0] == "date" and typed_values("Acme") == [("text", None, "Acme")]
    assert typed_values({"a": 1}) == [] and typed_values(None) == [] and typed_values(float("nan")) == []
    assert typed_values("x" * 500) == []  # a description is not an attribute to filter by


def test_kinds_come_from_the_catalog_and_internal_metadata_is_left_out(catalog):
    kinds = AttributeIndex(catalog.attributes).kinds()
    assert kinds == {"category": "text", "price": "number", "brand": "text", "size": "text", "in_stock": "bool",
                     "released": "date"}


@pytest.mark.parametrize(("query", "expected"), [
    ({"category": "dress"}, [1, 2]),
    ({"category": ["Skirt", "Coat"]}, [3, 4, 5]),
    ({"brand": "ACME"}, [1, 2]),  # text without regard to case
    ({"size": "M"}, [1, 3]),  # any of an item's sizes
    ({"size": {"in": ["L", "XL"]}}, [2, 4]),
    ({"price": {"lte": 50}}, [1, 2, 3]),
    ({"price": {"lt": 50}}, [1, 3]),
    ({"price": {"gt": 12.5, "lte": 199}}, [1, 2, 4]),
    ({"price": 50}, [2]),
    ({"in_stock": True}, [1, 3, 4]),
    ({"in_stock": False, "category": "Dress"}, [2]),
    ({"released": {"gte": "2026-01-01"}}, [1, 3]),
    ({"brand": "acme", "price": {"gte": 100}}, []),
])
def test_filters_match_the_items_meeting_every_condition(catalog, query, expected):
    index = AttributeIndex(catalog.attributes)
    assert index.matching(index.parse(query)).tolist() == expected


@pytest.mark.parametrize(("query", "message"), [
    ({"colour": "red"}, "unknown filter field 'colour'; known: brand, category, in_stock, price, released, size"),
    ({"price": "cheap"}, "'cheap' is not a number"),
    ({"in_stock": "yes"}, "'yes' is not a bool"),
    ({"released": {"gte": "soon"}}, "'soon' is not a date"),
    ({"brand": {"lte": 3}}, "a range needs a number or date field"),
    ({"price": {"lte": 3, "in": [1]}}, "cannot be mixed"),
    ({"price": {"about": 3}}, "use eq, gt, gte, in, lt, lte"),
    ({"size": []}, "give 1 to 100 values"),
    ("[1, 2]", "must be a JSON object"),
    ("{oops", "not valid JSON"),
])
def test_bad_filters_say_what_is_wrong(catalog, query, message):
    with pytest.raises(InvalidRequestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        AttributeIndex(catalog.attributes).parse(query)


def test_facets_count_the_items_a_filter_matches(catalog):
    index = AttributeIndex(catalog.attributes)
    everything = index.facets(None)
    assert everything["values"]["category"] == [{"value": "Coat", "count": 2}, {"value": "Dress", "count": 2},
                                                {"value": "Skirt", "count": 1}]
    assert {v["value"]: v["count"] for v in everything["values"]["size"]} == {"S": 1, "M": 2, "L": 1, "XL": 1}
    assert everything["values"]["in_stock"] == [{"value": True, "count": 3}, {"value": False, "count": 1}]
    assert sum(r["count"] for r in everything["ranges"]["price"]) == 4  # every priced item in one range
    cheap = index.facets(index.matching(index.parse({"price": {"lte": 50}})))
    assert {v["value"]: v["count"] for v in cheap["values"]["category"]} == {"Dress": 2, "Skirt": 1, "Coat": 0}
    assert sum(r["count"] for r in cheap["ranges"]["price"]) == 3


def test_a_change_of_the_catalog_is_seen_by_an_index_built_before(catalog):
    index = AttributeIndex(catalog.attributes)
    assert index.matching(index.parse({"brand": "Third"})).tolist() == [5]
    catalog.update_attributes([(5, None, {"brand": "Fourth"})])
    new = catalog.add_items([NewItem("/img/9.jpg", "h9", "Coat", None, {"brand": "Third", "price": 5})], "m")
    catalog.delete_items([1])
    assert index.matching(index.parse({"brand": "Third"})).tolist() == new
    assert index.matching(index.parse({"category": "Dress"})).tolist() == [2]
    changes = [ProductChange("SKU-1", "Coat", {"brand": "Fifth", "color": "red"}, [])]
    catalog.products.apply(changes, "m")  # a product's attributes reach its items (it has none yet here)
    assert "color" not in index.kinds()


def test_a_products_attributes_are_its_items_attributes(catalog):
    change = ProductChange("SKU-9", "Bag", {"brand": "Acme", "price": 80}, ["http://x/1.jpg"],
                           [NewItem("/img/p.jpg", "hp", "Bag", "SKU-9", {"position": 0}, "SKU-9", "http://x/1.jpg")])
    new = catalog.products.apply([change], "m")["SKU-9"]
    index = AttributeIndex(catalog.attributes)
    assert index.matching(index.parse({"brand": "acme", "price": {"gt": 60}})).tolist() == new
    catalog.products.apply([ProductChange("SKU-9", "Bag", {"brand": "Acme", "price": 40}, ["http://x/1.jpg"])], "m")
    assert index.matching(index.parse({"brand": "acme", "price": {"gt": 60}})).tolist() == []
    assert index.matching(index.parse({"price": 40})).tolist() == new
    catalog.products.delete(["SKU-9"])
    assert index.matching(index.parse({"category": "Bag"})).size == 0


def test_a_database_made_before_attributes_is_filled_when_opened(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    catalog = Catalog(url)
    catalog.add_items([NewItem("/img/a.jpg", "ha", "Dress", None, {"price": 10})], "m")
    with catalog.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE item_attributes")
    catalog.close()
    reopened = Catalog(url)
    index = AttributeIndex(reopened.attributes)
    assert index.matching(index.parse({"price": 10})).tolist() == [1]
    reopened.close()
    assert np.array_equal(index.matching(index.parse({"category": "dress"})), [1])
