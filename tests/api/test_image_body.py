"""A search whose request body is the image itself (no multipart form): the same answer as the form's, the options
in the query string, and clear 4xx answers for bad bodies."""


def _form_search(client, data: bytes, **fields):
    return client.post("/api/search", files={"file": ("q.jpg", data, "image/jpeg")}, data=fields)


def test_an_image_body_finds_what_the_form_finds(client, query_dir):
    for path in sorted(query_dir.rglob("*.jpg"))[:3]:
        data = path.read_bytes()
        raw = client.post("/api/search?k=4", content=data, headers={"Content-Type": "image/jpeg"})
        form = _form_search(client, data, k="4")
        assert raw.status_code == 200, raw.text
        assert [(r["id"], r["score"]) for r in raw.json()["results"]] == [
            (r["id"], r["score"]) for r in form.json()["results"]]
        assert len(raw.json()["results"]) == 4
        assert raw.json()["query_id"] != form.json()["query_id"]  # both recorded


def test_an_image_body_takes_category_and_filter_from_the_query_string(client, query_dir):
    data = next(query_dir.rglob("*.jpg")).read_bytes()
    category = client.get("/api/categories").json()[0]["name"]
    answer = client.post("/api/search", params={"k": 3, "filter": f'{{"category": ["{category}"]}}', "facets": "true"},
                         content=data, headers={"Content-Type": "image/jpeg"})
    assert answer.status_code == 200, answer.text
    assert {r["category"] for r in answer.json()["results"]} == {category}
    assert answer.json()["facets"] is not None
    liked = answer.json()["results"][0]["id"]
    refined = client.post("/api/search/refine", json={"query_id": answer.json()["query_id"], "k": 2,
                                                      "liked": [liked]})
    assert refined.status_code == 200, refined.text


def test_bad_image_bodies_get_clear_4xx_answers(client, query_dir):
    empty = client.post("/api/search", content=b"", headers={"Content-Type": "image/jpeg"})
    assert empty.status_code == 400 and "empty" in empty.json()["detail"]
    html = client.post("/api/search", content=b"<html>no</html>", headers={"Content-Type": "image/png"})
    assert html.status_code == 400 and "upload" in html.json()["detail"]
    bad_k = client.post("/api/search?k=0", content=next(query_dir.rglob("*.jpg")).read_bytes(),
                        headers={"Content-Type": "image/jpeg"})
    assert bad_k.status_code == 422
    unknown = client.post("/api/search?category=nope", content=next(query_dir.rglob("*.jpg")).read_bytes(),
                          headers={"Content-Type": "image/jpeg"})
    assert unknown.status_code == 422 and "unknown category" in unknown.json()["detail"]
    limit = int(client.app.state.lookalike.settings.max_upload_mb * 2**20)
    big = client.post("/api/search", content=b"\xff" * (limit + 10), headers={"Content-Type": "image/jpeg"})
    assert big.status_code == 413


def test_the_openapi_schema_offers_both_bodies(client):
    body = client.get("/openapi.json").json()["paths"]["/api/search"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "image/*"} <= set(body)
