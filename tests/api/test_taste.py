"""Shoppers' taste (X-Shopper-Id header or the dashboard's cookie) and GET /api/recommendations."""

from __future__ import annotations

import io

from imagegen import make_image


def jpeg(category: str, seed: int) -> bytes:
    buffer = io.BytesIO()
    make_image(category, seed).save(buffer, format="JPEG")
    return buffer.getvalue()


def search(client, category: str, seed: int, shopper: str, k: int = 2) -> dict:
    response = client.post("/api/search", files={"file": ("q.jpg", jpeg(category, seed), "image/jpeg")},
                           data={"k": str(k)}, headers={"X-Shopper-Id": shopper})
    assert response.status_code == 200, response.text
    return response.json()


def recommend(client, shopper: str, k: int = 3, **params) -> dict:
    response = client.get("/api/recommendations", params={"k": k, **params}, headers={"X-Shopper-Id": shopper})
    assert response.status_code == 200, response.text
    return response.json()


def test_searches_build_a_taste_and_recommendations_skip_what_was_seen(client):
    assert recommend(client, "alice")["results"] == []  # no taste yet
    seen: set[int] = set()
    for seed in (610, 611):
        seen |= {r["id"] for r in search(client, "checks", seed, "alice")["results"]}
    body = recommend(client, "alice", k=3)
    assert body["shopper"] == "alice" and body["searches"] == 2 and body["likes"] == 0
    ids = [r["id"] for r in body["results"]]
    assert len(ids) == 3 and not set(ids) & seen
    assert {r["category"] for r in body["results"]} == {"checks"}
    assert recommend(client, "bob")["results"] == []  # tastes are per shopper


def test_likes_pull_the_taste_and_liked_items_are_not_recommended_again(client):
    first = search(client, "circles", 620, "carol", k=3)
    stripes = [i["id"] for i in (client.get(f"/api/items/{n}").json() for n in range(1, 19))
               if i["category"] == "stripes"]
    refined = client.post("/api/search/refine", json={"query_id": first["query_id"], "liked": stripes[:3], "k": 3},
                          headers={"X-Shopper-Id": "carol"})
    assert refined.status_code == 200
    shown = {r["id"] for r in first["results"]} | {r["id"] for r in refined.json()["results"]}
    body = recommend(client, "carol", k=4)
    assert body["likes"] == 3 and body["searches"] == 2
    ids = {r["id"] for r in body["results"]}
    assert not ids & (shown | set(stripes[:3]))
    assert "stripes" in {r["category"] for r in body["results"]}


def test_the_dashboard_cookie_identifies_the_shopper(client):
    client.cookies.set("lookalike_shopper", "cookie-shopper-1")
    try:
        response = client.post("/api/search", files={"file": ("q.jpg", jpeg("stripes", 630), "image/jpeg")},
                               data={"k": "2"})
        assert response.status_code == 200
        body = client.get("/api/recommendations", params={"k": 2}).json()
        assert body["shopper"] == "cookie-shopper-1" and body["searches"] == 1 and len(body["results"]) == 2
    finally:
        client.cookies.clear()


def test_recommendations_need_a_valid_shopper(client):
    missing = client.get("/api/recommendations")
    assert missing.status_code == 422 and "X-Shopper-Id" in missing.json()["detail"]
    for bad in ("", "a b", "x" * 65, "<script>"):
        response = client.get("/api/recommendations", headers={"X-Shopper-Id": bad})
        assert response.status_code == 422, bad
    assert client.get("/api/recommendations", params={"k": 0}, headers={"X-Shopper-Id": "dave"}).status_code == 422
    bad_search = client.post("/api/search", files={"file": ("q.jpg", jpeg("stripes", 1), "image/jpeg")},
                             headers={"X-Shopper-Id": "no spaces allowed"})
    assert bad_search.status_code == 422 and "shopper id" in bad_search.json()["detail"]
