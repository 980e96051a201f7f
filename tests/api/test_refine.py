"""POST /api/search/refine: Rocchio feedback on a stored query, without a new upload."""

from __future__ import annotations

import io

from imagegen import circles_or_stripes


def ambiguous_jpeg() -> bytes:
    buffer = io.BytesIO()
    circles_or_stripes().save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def search(client, data: bytes, **form):
    return client.post("/api/search", files={"file": ("q.jpg", data, "image/jpeg")}, data=form)


def count(results: list[dict], category: str) -> int:
    return sum(r["category"] == category for r in results)


def test_liking_one_category_brings_more_of_it(client):
    first = search(client, ambiguous_jpeg(), k="6").json()
    before = {c: count(first["results"], c) for c in ("circles", "stripes")}
    assert all(before.values()), before  # the query really is ambiguous: both categories come back
    liked_category, other = sorted(before, key=before.get)  # the minority one
    liked = [r["id"] for r in first["results"] if r["category"] == liked_category]
    disliked = [r["id"] for r in first["results"] if r["category"] == other]
    response = client.post("/api/search/refine", json={"query_id": first["query_id"], "liked": liked,
                                                        "disliked": disliked, "k": 6})
    assert response.status_code == 200, response.text
    refined = response.json()
    assert refined["query_id"] != first["query_id"] and len(refined["results"]) == 6
    assert [r["rank"] for r in refined["results"]] == list(range(1, 7))
    assert count(refined["results"], liked_category) > before[liked_category]
    assert count(refined["results"], liked_category) > count(refined["results"], other)
    assert set(liked) <= {r["id"] for r in refined["results"]}  # nothing is excluded by default


def test_a_refinement_can_be_refined_again_and_likes_alone_suffice(client, auth):
    first = search(client, ambiguous_jpeg(), k="6").json()
    stripes = [r["id"] for r in first["results"] if r["category"] == "stripes"][:1]
    second = client.post("/api/search/refine", json={"query_id": first["query_id"], "liked": stripes, "k": 6}).json()
    more = [r["id"] for r in second["results"] if r["category"] == "stripes"]
    third = client.post("/api/search/refine", json={"query_id": second["query_id"], "liked": more, "k": 6})
    assert third.status_code == 200
    assert count(third.json()["results"], "stripes") >= count(second["results"], "stripes") >= 1
    history = client.get("/api/history", params={"limit": 1}, headers=auth).json()[0]
    assert history["id"] == third.json()["query_id"] and history["query"].startswith("refined search")


def test_more_like_item_searches_can_be_refined_too(client):
    similar = client.get("/api/items/1/similar", params={"k": 3}).json()
    response = client.post("/api/search/refine", json={"query_id": similar["query_id"],
                                                        "disliked": [similar["results"][0]["id"]]})
    assert response.status_code == 200 and len(response.json()["results"]) == 5


def test_bad_refinements_get_clear_4xx(client):
    query_id = search(client, ambiguous_jpeg(), k="3").json()["query_id"]
    unknown_query = client.post("/api/search/refine", json={"query_id": 99999, "liked": [1]})
    assert unknown_query.status_code == 404 and "99999" in unknown_query.json()["detail"]
    unknown_item = client.post("/api/search/refine", json={"query_id": query_id, "liked": [1, 4242]})
    assert unknown_item.status_code == 404 and "4242" in unknown_item.json()["detail"]
    both = client.post("/api/search/refine", json={"query_id": query_id, "liked": [1], "disliked": [1]})
    assert both.status_code == 422 and "both" in both.json()["detail"]
    nothing = client.post("/api/search/refine", json={"query_id": query_id})
    assert nothing.status_code == 422 and "at least one" in nothing.json()["detail"]
    for body in ({"query_id": query_id, "liked": [1], "k": 0}, {"query_id": "x", "liked": [1]},
                 {"query_id": query_id, "liked": ["a"]}, {"liked": [1]}):
        assert client.post("/api/search/refine", json=body).status_code == 422
    not_json = client.post("/api/search/refine", content=b"{oops", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 422
    category = client.post("/api/search/refine", json={"query_id": query_id, "liked": [1], "category": "gowns"})
    assert category.status_code == 422 and "unknown category" in category.json()["detail"]
