"""Filtered similarity and facets over REST, on FAISS + SQLite and on Milvus + PostgreSQL: a catalog whose manifest
gives each item a price, a brand, sizes and stock; every search the API offers takes a filter, answers only matching
items (k of them whenever k match), counts facets like brute force over the manifest, and refuses a bad filter
with a 422 that says why."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lookalike.api.main import create_app
from lookalike.bootstrap import open_engine
from lookalike.data.sources import open_source
from lookalike.ingest import ingest

from imagegen import CATEGORIES, jpeg_bytes, make_image, write_catalog

BRANDS = ["Acme", "Bolt", "Cirrus"]
SIZES = ["S", "M", "L", "XL"]


def attributes_of(n: int) -> dict:
    return {"price": float(10 + (n * 7) % 90), "brand": BRANDS[n % 3], "size": SIZES[n % 4], "in_stock": n % 5 != 0}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """18 generated images (3 categories x 6) with attributes in manifest columns."""
    root = tmp_path_factory.mktemp("filtered")
    paths = write_catalog(root / "images", per_category=6)
    with (root / "manifest.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["path", "category", "price", "brand", "size", "in_stock"])
        for n, path in enumerate(paths):
            a = attributes_of(n)
            writer.writerow([path.relative_to(root), path.parent.name, a["price"], a["brand"], a["size"],
                             str(a["in_stock"]).lower()])
    return root / "manifest.csv"


@pytest.fixture
def shop(api_settings, manifest):
    engine = open_engine(api_settings)
    ingest(engine, open_source(manifest))
    engine.close()
    with TestClient(create_app(api_settings)) as client:
        yield client


def rows(client: TestClient) -> dict[int, dict]:
    """Every item's attributes as the manifest gave them (CSV cells read back by the ingest), by id."""
    engine = client.app.state.lookalike.engine
    return {r.id: {**r.metadata, "category": r.category} for r in engine.catalog.iter_items()}


def matches(item: dict, query: dict) -> bool:
    for name, condition in query.items():
        value = item.get(name)
        values = [value]
        if isinstance(condition, dict):
            if not all({"lte": lambda v, b: v <= b, "lt": lambda v, b: v < b, "gte": lambda v, b: v >= b,
                        "gt": lambda v, b: v > b}[op](float(value), bound) for op, bound in condition.items()):
                return False
        elif not any(str(v).lower() in {str(c).lower() for c in (condition if isinstance(condition, list)
                                                                   else [condition])} for v in values):
            return False
    return True


QUERIES = [
    {"brand": "Acme"},
    {"category": ["circles", "checks"], "price": {"lte": 50}},
    {"size": "XL", "in_stock": True},
    {"price": {"gt": 40, "lt": 80}, "brand": ["bolt", "CIRRUS"]},
]


@pytest.mark.parametrize("query", QUERIES)
def test_search_returns_only_matching_items_and_k_of_them_whenever_k_match(shop, query):
    items = rows(shop)
    cells = {i: {**a, "in_stock": a["in_stock"] in (True, "true")} for i, a in items.items()}
    expected = {i for i, a in cells.items() if matches(a, {**query, **({"in_stock": True} if "in_stock" in query
                                                                         else {})})}
    photo = jpeg_bytes(make_image("stripes", 900))
    for k in (3, len(items)):
        body = shop.post("/api/search", files={"file": ("q.jpg", photo, "image/jpeg")},
                         data={"k": str(k), "filter": json.dumps(query), "facets": "true"}).json()
        ids = [r["id"] for r in body["results"]]
        assert set(ids) <= expected and len(ids) == min(k, len(expected)), (query, k)
        assert body["matching"] == len(expected) and json.loads(body["filter"]) == query
    counts = {v["value"]: v["count"] for v in body["facets"]["values"]["brand"]}
    assert counts == {b: sum(1 for i in expected if cells[i]["brand"] == b) for b in BRANDS}


def test_facets_count_like_brute_force(shop):
    items = rows(shop)
    body = shop.get("/api/facets").json()
    assert body["matching"] == len(items) == 18
    assert {v["value"]: v["count"] for v in body["values"]["category"]} == {c: 6 for c in CATEGORIES}
    assert {v["value"]: v["count"] for v in body["values"]["size"]} == {
        s: sum(1 for a in items.values() if a["size"] == s) for s in SIZES}
    assert sum(r["count"] for r in body["ranges"]["price"]) == 18
    assert body["kinds"] == {"category": "text", "price": "number", "brand": "text", "size": "text", "in_stock": "bool"}
    narrowed = shop.get("/api/facets", params={"filter": json.dumps({"brand": "Bolt"})}).json()
    assert narrowed["matching"] == 6 and {v["value"]: v["count"] for v in narrowed["values"]["brand"]} == {
        "Bolt": 6, "Acme": 0, "Cirrus": 0}


def test_every_search_takes_a_filter(shop):
    photo = jpeg_bytes(make_image("circles", 901))
    query = {"brand": "Cirrus"}
    cirrus = {i for i, a in rows(shop).items() if a["brand"] == "Cirrus"}
    first = shop.post("/api/search", files={"file": ("q.jpg", photo, "image/jpeg")}, data={"k": "4"},
                      headers={"X-Shopper-Id": "ann"}).json()
    again = shop.post("/api/search", data={"query_id": str(first["query_id"]), "k": "4",
                                           "filter": json.dumps(query)}).json()
    assert {r["id"] for r in again["results"]} <= cirrus and len(again["results"]) == 4
    refined = shop.post("/api/search/refine", json={"query_id": first["query_id"], "liked": [first["results"][0]["id"]],
                                                    "k": 4, "filter": query}).json()
    assert {r["id"] for r in refined["results"]} <= cirrus
    similar = shop.get(f"/api/items/{first['results'][0]['id']}/similar",
                       params={"k": 3, "filter": json.dumps(query)}).json()
    assert {r["id"] for r in similar["results"]} <= cirrus and len(similar["results"]) == 3
    recommended = shop.get("/api/recommendations", params={"k": 3, "filter": json.dumps(query)},
                           headers={"X-Shopper-Id": "ann"}).json()
    assert {r["id"] for r in recommended["results"]} <= cirrus and recommended["results"]


@pytest.mark.parametrize(("raw", "message"), [
    ('{"colour": "red"}', "unknown filter field 'colour'; known: brand, category, in_stock, price, size"),
    ('{"price": "cheap"}', "'cheap' is not a number"),
    ('{"in_stock": 1}', "not a bool"),
    ('{"price": {"lte": 10, "eq": 5}}', "cannot be mixed"),
    ("not json", "not valid JSON"),
])
def test_a_bad_filter_is_a_422_that_says_why(shop, raw, message):
    photo = jpeg_bytes(make_image("checks", 902))
    for response in (shop.post("/api/search", files={"file": ("q.jpg", photo, "image/jpeg")}, data={"filter": raw}),
                     shop.get("/api/facets", params={"filter": raw}),
                     shop.get("/api/items/1/similar", params={"filter": raw})):
        assert response.status_code == 422 and message in response.json()["detail"], response.text


def test_a_filter_nothing_matches_answers_no_results(shop):
    photo = jpeg_bytes(make_image("checks", 903))
    body = shop.post("/api/search", files={"file": ("q.jpg", photo, "image/jpeg")},
                     data={"filter": json.dumps({"price": {"gt": 1000}})}).json()
    assert body["results"] == [] and body["matching"] == 0
