"""The REST API over a small generated catalog, through FastAPI's TestClient (real HTTP semantics)."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from lookalike.api.main import create_app

from imagegen import make_image


def jpeg(category: str, seed: int) -> bytes:
    buffer = io.BytesIO()
    make_image(category, seed).save(buffer, format="JPEG")
    return buffer.getvalue()


def search(client, data: bytes, **form):
    return client.post("/api/search", files={"file": ("q.jpg", data, "image/jpeg")}, data=form)


def test_search_returns_k_ranked_results_with_scores_and_confidence(client):
    response = search(client, jpeg("stripes", 300), k="4")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["k"] == 4 and body["query_id"] > 0 and body["took_ms"] > 0
    results = body["results"]
    assert [r["rank"] for r in results] == [1, 2, 3, 4]
    assert results[0]["category"] == "stripes"
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= r["confidence"] <= 1 for r in results)
    assert results[0]["confidence"] >= results[-1]["confidence"]
    image = client.get(results[0]["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    thumb = client.get(results[0]["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"


def test_default_k_and_category_filter(client):
    body = search(client, jpeg("circles", 301), category="checks").json()
    assert len(body["results"]) == 5 and {r["category"] for r in body["results"]} == {"checks"}
    unknown = search(client, jpeg("circles", 301), category="gowns")
    assert unknown.status_code == 422 and "unknown category" in unknown.json()["detail"]


def test_bad_uploads_get_4xx_with_a_message(client):
    assert search(client, b"").status_code == 400
    not_image = search(client, b"<html><body>hi</body></html>")
    assert not_image.status_code == 400 and "detail" in not_image.json()
    too_few = search(client, jpeg("circles", 1), k="0")
    assert too_few.status_code == 422 and too_few.json()["errors"][0]["loc"] == ["body", "k"]
    assert "k: Input should be greater than or equal to 1" in too_few.json()["detail"]
    assert search(client, jpeg("circles", 1), k="abc").status_code == 422
    assert search(client, jpeg("circles", 1), group_by="colour").json()["errors"][0]["loc"] == ["body", "group_by"]
    missing = client.post("/api/search", data={"k": "3"})
    assert missing.status_code == 422 and "file" in missing.json()["detail"]
    text_file = client.post("/api/search", data={"file": "not a file"}, files={"other": ("x", b"x")})
    assert text_file.status_code == 422 and "uploaded file" in text_file.json()["detail"]
    not_multipart = client.post("/api/search", content=b"{}", headers={"Content-Type": "application/json"})
    assert not_multipart.status_code == 422 and "file" in not_multipart.json()["detail"]
    broken = client.post("/api/search", content=b"--x\r\nbroken", headers={"Content-Type": "multipart/form-data"})
    assert broken.status_code == 400
    assert search(client, jpeg("circles", 2)).status_code == 200  # still up


def test_empty_form_fields_count_as_absent_and_options_are_documented(client):
    body = search(client, jpeg("checks", 303), k="", category="", filter="", dedupe="", group_by="").json()
    assert body["k"] == 5 and body["category"] is None and body["filter"] is None
    form = client.get("/openapi.json").json()["paths"]["/api/search"]["post"]["requestBody"]["content"][
        "multipart/form-data"]["schema"]["properties"]
    assert {"file", "item_ids", "query_id", "k", "category", "dedupe", "group_by", "filter", "facets"} <= set(form)
    assert form["k"]["maximum"] == 1000 and form["file"]["items"]["format"] == "binary"


def test_item_read_similar_and_missing(client):
    item = client.get("/api/items/1").json()
    assert item["id"] == 1 and item["category"] in {"checks", "circles", "stripes"}
    similar = client.get("/api/items/1/similar", params={"k": 3}).json()
    assert len(similar["results"]) == 3 and 1 not in [r["id"] for r in similar["results"]]
    assert similar["results"][0]["category"] == item["category"]
    assert client.get("/api/items/9999").status_code == 404
    assert client.get("/api/items/9999/image").status_code == 404
    assert client.get("/api/items/abc").status_code == 422
    assert client.get("/api/items/1/image", params={"size": "../../etc/passwd"}).status_code == 422


def test_add_and_delete_change_results_at_once(client, auth):
    query = jpeg("circles", 777)
    added = client.post("/api/items", headers=auth, data={"category": "circles", "item_id": "SKU-777",
                                                          "metadata": '{"price": 19.5}'},
                        files=[("files", ("mine.jpg", query, "image/jpeg"))])
    assert added.status_code == 201, added.text
    new = added.json()["items"][0]
    assert new["item_id"] == "SKU-777" and new["metadata"]["price"] == 19.5
    top = search(client, query, k="1").json()["results"][0]
    assert top["id"] == new["id"] and top["score"] > 0.999
    assert client.delete(f"/api/items/{new['id']}", headers=auth).status_code == 204
    top = search(client, query, k="1").json()["results"][0]
    assert top["id"] != new["id"]
    assert client.get(f"/api/items/{new['id']}").status_code == 404
    assert client.delete(f"/api/items/{new['id']}", headers=auth).status_code == 404


def test_add_several_reports_bad_files_and_keeps_the_good_ones(client, auth):
    files = [("files", ("a.jpg", jpeg("checks", 901), "image/jpeg")),
             ("files", ("b.jpg", b"not an image", "image/jpeg"))]
    response = client.post("/api/items", headers=auth, files=files, data={"category": "checks"})
    assert response.status_code == 201
    body = response.json()
    assert len(body["items"]) == 1 and body["failures"][0]["file"] == "b.jpg"
    only_bad = client.post("/api/items", headers=auth, files=[("files", ("c.jpg", b"nope", "image/jpeg"))])
    assert only_bad.status_code == 400
    bad_meta = client.post("/api/items", headers=auth, files=files[:1], data={"metadata": "{not json"})
    assert bad_meta.status_code == 422


def test_writes_need_the_token(client, auth):
    files = [("files", ("a.jpg", jpeg("checks", 902), "image/jpeg"))]
    assert client.post("/api/items", files=files).status_code == 401
    assert client.post("/api/items", files=files, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.delete("/api/items/1").status_code == 401
    assert client.delete("/api/items/1", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get("/api/items/1").status_code == 200


def test_writes_are_disabled_without_a_configured_token(settings, catalog_dir):
    with TestClient(create_app(settings)) as client:
        response = client.delete("/api/items/1", headers={"Authorization": "Bearer anything"})
        assert response.status_code == 403 and "LOOKALIKE_API_TOKEN" in response.json()["detail"]


def test_metadata_endpoints(client, api_settings, auth):
    search(client, jpeg("checks", 5), k="2")
    assert client.get("/api/health").json()["status"] == "ok"
    stats = client.get("/api/stats").json()
    assert stats["items"] == 18 and stats["categories"] == 3 and stats["searches"] >= 1
    assert stats["index"]["type"] == {"faiss": "Flat", "milvus": "milvus:HNSW"}[api_settings.vector_store]
    database = {"faiss": "sqlite:", "milvus": "postgresql+psycopg:"}[api_settings.vector_store]
    assert api_settings.resolved_database_url.startswith(database)
    categories = client.get("/api/categories").json()
    assert {c["name"]: c["count"] for c in categories} == {"checks": 6, "circles": 6, "stripes": 6}
    history = client.get("/api/history", headers=auth).json()  # the operator sees every shopper's searches
    assert history[0]["query"] == "q.jpg" and len(history[0]["results"]) == 2
    assert client.get("/api/report").status_code == 404
    assert client.get("/docs").status_code == 200
    assert "/api/search" in client.get("/openapi.json").json()["paths"]
    assert client.get("/").status_code == 200


def test_embedding_map_is_computed_in_the_background(client):
    import time

    first = client.get("/api/embedding-map")
    assert first.status_code in (200, 202)
    deadline = time.time() + 60
    while (response := client.get("/api/embedding-map")).status_code == 202 and time.time() < deadline:
        time.sleep(0.2)
    body = response.json()
    assert response.status_code == 200 and len(body["points"]) == 18
    assert {p["category"] for p in body["points"]} == {"checks", "circles", "stripes"}
    assert all(0 <= p["x"] <= 1 and 0 <= p["y"] <= 1 for p in body["points"])


def test_empty_catalog_search_is_a_clear_409(settings):
    with TestClient(create_app(settings)) as client:
        response = search(client, jpeg("checks", 1))
        assert response.status_code == 409 and "empty" in response.json()["detail"]


def test_oversized_upload_is_refused_with_413(api_settings, catalog_dir):
    small = api_settings.model_copy(update={"max_upload_mb": 0.05})
    with TestClient(create_app(small)) as client:
        response = client.post("/api/search", files={"file": ("big.jpg", b"\xff" * 200_000, "image/jpeg")})
        assert response.status_code == 413 and "limit" in response.json()["detail"]


def test_concurrent_requests_for_one_new_thumbnail_all_get_it(client):
    """Each request writing the thumbnail uses its own temporary file, so racing ones never fail."""
    item = search(client, jpeg("checks", 310), k="1").json()["results"][0]["id"]
    for round_ in range(3):
        thumbs = client.app.state.lookalike.settings.home / "thumbs"
        for old in thumbs.glob("*"):
            old.unlink()
        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(lambda _: client.get(f"/api/items/{item}/image?size=thumb"), range(16)))
        assert [r.status_code for r in responses] == [200] * 16, round_
        assert all(r.content[:2] == b"\xff\xd8" for r in responses)
        assert [p.name for p in thumbs.iterdir() if p.name.startswith(".")] == []  # no temporary file left
