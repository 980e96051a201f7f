"""POST /api/search with several examples (files and catalog items), and deduplicated result lists."""

from __future__ import annotations

import io
from pathlib import Path

from imagegen import make_image, make_product


def jpeg(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def files(*images: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", (f"q{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images)]


def test_several_files_search_with_the_normalized_mean(client, auth):
    circles, stripes = jpeg(make_image("circles", 310)), jpeg(make_image("stripes", 311))
    scores = []
    for examples in ((circles,), (stripes,), (circles, stripes)):
        response = client.post("/api/search", files=files(*examples), data={"k": "18"})
        assert response.status_code == 200, response.text
        scores.append({r["id"]: r["similarity"] for r in response.json()["results"]})
    single_a, single_b, both = scores
    # cos(normalize(a + b), x) = (cos(a, x) + cos(b, x)) / |a + b|: one constant ratio over the whole catalog.
    ratios = [both[i] / (single_a[i] + single_b[i]) for i in both]
    assert len(ratios) == 18 and max(ratios) - min(ratios) < 1e-3, ratios
    assert 0.5 - 1e-3 <= ratios[0] <= 2 ** -0.5 + 1e-3  # 1 / |a + b| for unit a, b at most 90 degrees apart
    history = client.get("/api/history", params={"limit": 1}, headers=auth).json()
    assert history[0]["query"] == "2 examples: q0.jpg, q1.jpg"


def test_catalog_items_as_examples_alone_or_with_files(client):
    stripes = [i["id"] for i in (client.get(f"/api/items/{n}").json() for n in range(1, 19))
               if i["category"] == "stripes"]
    by_items = client.post("/api/search", data={"item_ids": f"{stripes[0]}, {stripes[1]}", "k": "4"})
    assert by_items.status_code == 200, by_items.text
    results = by_items.json()["results"]
    assert {r["category"] for r in results} == {"stripes"}
    assert {stripes[0], stripes[1]} <= {r["id"] for r in results}  # the examples themselves are the closest
    mixed = client.post("/api/search", files=files(jpeg(make_image("checks", 312))),
                        data={"item_ids": str(stripes[2]), "k": "6"})
    assert {r["category"] for r in mixed.json()["results"]} == {"checks", "stripes"}


def test_bad_examples_get_clear_4xx(client):
    unknown = client.post("/api/search", data={"item_ids": "1,4242"})
    assert unknown.status_code == 404 and "4242" in unknown.json()["detail"]
    for bad in ("a,b", "1;2", "-3"):
        response = client.post("/api/search", data={"item_ids": bad})
        assert response.status_code == 422 and "item_ids" in response.json()["detail"]
    too_many = client.post("/api/search", data={"item_ids": ",".join(str(i) for i in range(1, 19)) + ",1"},
                           files=files(*[jpeg(make_image("checks", 1))] * 3))
    assert too_many.status_code == 422 and "at most" in too_many.json()["detail"]
    nothing = client.post("/api/search", data={"k": "3", "item_ids": " "})
    assert nothing.status_code == 422 and "file" in nothing.json()["detail"]
    one_bad = client.post("/api/search", files=files(jpeg(make_image("checks", 1)), b"not an image"))
    assert one_bad.status_code == 400


def item_names(client, results: list[dict]) -> list[str]:
    catalog = client.app.state.lookalike.engine.catalog
    return [Path(catalog.get_item(r["id"]).path).name for r in results]


def test_dedupe_collapses_planted_copies_and_still_returns_k(product_client, product_catalog):
    groups = product_catalog[1]
    for category, seed in (("tees", 3), ("dresses", 2), ("trousers", 5), ("tees", 6), ("dresses", 7)):
        query = jpeg(make_product(category, seed, 320))
        plain = product_client.post("/api/search", files=files(query), data={"k": "5"}).json()
        plain_names = item_names(product_client, plain["results"])
        group = next(g for g in groups if f"{category}-{seed}.png" in g)
        assert group <= set(plain_names), plain_names  # the copy is among the plain results
        response = product_client.post("/api/search", files=files(query), data={"k": "5", "dedupe": "true"})
        assert response.status_code == 200, response.text
        body = response.json()
        names = item_names(product_client, body["results"])
        assert body["dedupe"] is True and len(names) == 5 and len(set(names) & group) == 1, names
        assert [r["rank"] for r in body["results"]] == [1, 2, 3, 4, 5]
        assert body["results"][0]["id"] == plain["results"][0]["id"]
    wide = product_client.post("/api/search", files=files(jpeg(make_product("tees", 3, 320))),
                               data={"k": "30", "dedupe": "true"}).json()
    names = set(item_names(product_client, wide["results"]))
    assert len(wide["results"]) == 30 and all(len(names & g) <= 1 for g in groups)
    similar = product_client.get("/api/items/1/similar", params={"k": 30, "dedupe": "true"}).json()
    similar_names = set(item_names(product_client, similar["results"]))
    assert similar["dedupe"] and all(len(similar_names & g) <= 1 for g in groups)
