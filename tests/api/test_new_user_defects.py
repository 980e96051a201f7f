"""Defects a new user found (issue #16): private history, no filesystem paths for anonymous clients, re-adds that
update instead of dropping data, refinements without the disliked items, failing files named, honest OpenAPI."""

from __future__ import annotations

import io
import json

from imagegen import make_image


def jpeg(category: str, seed: int) -> bytes:
    buffer = io.BytesIO()
    make_image(category, seed).save(buffer, format="JPEG")
    return buffer.getvalue()


def search(client, data: bytes, shopper: str | None = None, name: str = "q.jpg", **form):
    headers = {"X-Shopper-Id": shopper} if shopper else {}
    return client.post("/api/search", files={"file": (name, data, "image/jpeg")}, data=form, headers=headers)


def test_history_shows_a_shopper_only_their_own_searches(client, auth):
    assert search(client, jpeg("checks", 1), "alice", name="alice-coat.jpg").status_code == 200
    assert search(client, jpeg("stripes", 2), "bob", name="bob-dress.jpg").status_code == 200
    mine = client.get("/api/history", headers={"X-Shopper-Id": "alice"}).json()
    assert [h["query"] for h in mine] == ["alice-coat.jpg"]
    client.cookies.set("lookalike_shopper", "bob")
    cookie = client.get("/api/history").json()
    client.cookies.clear()
    assert [h["query"] for h in cookie] == ["bob-dress.jpg"]
    assert client.get("/api/history", headers={"X-Shopper-Id": "carol"}).json() == []
    anonymous = client.get("/api/history")
    assert anonymous.status_code == 422 and "shopper" in anonymous.json()["detail"]
    everyone = client.get("/api/history", headers=auth).json()
    assert {h["query"] for h in everyone} >= {"alice-coat.jpg", "bob-dress.jpg"}
    assert client.get("/api/history", headers={"Authorization": "Bearer wrong"}).status_code == 403


def test_no_response_without_the_token_shows_a_filesystem_path(client, api_settings, catalog_dir):
    private = [str(api_settings.home), str(catalog_dir), str(api_settings.home.resolve())]
    first = search(client, jpeg("circles", 3), "dora", k="3").json()
    item = first["results"][0]["id"]
    bodies = [json.dumps(first)]
    for url in ("/api/health", "/api/stats", "/api/categories", f"/api/items/{item}", f"/api/items/{item}/similar",
                "/api/duplicates", "/api/recommendations", "/api/history", "/openapi.json"):
        response = client.get(url, headers={"X-Shopper-Id": "dora"})
        assert response.status_code == 200, (url, response.text)
        bodies.append(response.text)
    bodies.append(client.post("/api/search/refine", json={"query_id": first["query_id"], "liked": [item]}).text)
    for body in bodies:
        assert not any(path in body for path in private), body[:300]


def test_re_adding_an_image_updates_its_data_instead_of_dropping_it(client, auth):
    photo = jpeg("checks", 777)
    files = [("files", ("bag.jpg", photo, "image/jpeg"))]
    first = client.post("/api/items", headers=auth, files=files,
                        data={"category": "checks", "item_id": "SKU-1", "metadata": '{"price": 19.5}'})
    assert first.status_code == 201, first.text
    original = first.json()["items"][0]
    count = client.get("/api/health").json()["items"]
    again = client.post("/api/items", headers=auth, files=files,
                        data={"category": "checks", "item_id": "SKU-1-B", "metadata": '{"price": 17.0}'})
    assert again.status_code == 201, again.text
    updated = again.json()["items"][0]
    assert updated["id"] == original["id"] and updated["item_id"] == "SKU-1-B" and updated["metadata"]["price"] == 17.0
    stored = client.get(f"/api/items/{original['id']}").json()
    assert stored["item_id"] == "SKU-1-B" and stored["metadata"]["price"] == 17.0
    assert client.get("/api/health").json()["items"] == count
    moved = client.post("/api/items", headers=auth, files=files, data={"category": "stripes", "item_id": "SKU-1-B"})
    assert moved.status_code == 201, moved.text
    replacement = moved.json()["items"][0]
    assert replacement["category"] == "stripes" and replacement["id"] != original["id"]
    assert client.get(f"/api/items/{original['id']}").status_code == 404
    found = search(client, photo, k="1", category="stripes").json()["results"]
    assert found[0]["id"] == replacement["id"] and found[0]["score"] > 0.999
    assert client.get("/api/health").json()["items"] == count


def test_a_refinement_never_shows_the_items_disliked_in_it(client):
    first = search(client, jpeg("circles", 11), k="6").json()
    disliked = [r["id"] for r in first["results"][:3]]
    refined = client.post("/api/search/refine", json={"query_id": first["query_id"], "disliked": disliked, "k": 17})
    assert refined.status_code == 200, refined.text
    results = refined.json()["results"]
    assert len(results) == 15 and not {r["id"] for r in results} & set(disliked)  # 18 items, 3 disliked


def test_a_multi_image_search_names_the_unreadable_file(client):
    files = [("file", ("coat.jpg", jpeg("checks", 5), "image/jpeg")), ("file", ("notes.txt", b"hello", "text/plain"))]
    response = client.post("/api/search", files=files)
    assert response.status_code == 400
    assert "image 2 (notes.txt)" in response.json()["detail"]
    single = client.post("/api/search", files=[("file", ("notes.txt", b"hello", "text/plain"))])
    assert single.status_code == 400 and "notes.txt" in single.json()["detail"]


CATALOG_CHANGES = ("/api/items", "/api/products", "/api/sync")
UPLOADS = {("post", "/api/items"), ("post", "/api/search"), ("put", "/api/products/{sku}"), ("post", "/api/sync")}


def test_openapi_lists_for_each_operation_only_the_errors_it_can_answer(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            writes = method in ("post", "put", "delete") and path.startswith(CATALOG_CHANGES)
            assert ({"401", "403"} <= codes) == writes, (method, path, codes)
            uploads = (method, path) in UPLOADS
            assert ("413" in codes) == uploads, (method, path, codes)
    assert {"401", "413"}.isdisjoint(paths["/api/history"]["get"]["responses"])
