"""Products over REST, on FAISS + SQLite and on Milvus + PostgreSQL: a feed synced as a background job (followed
through /api/jobs), products read, upserted (image URLs or uploaded files) and deleted, search results grouped by
product with the product's attributes, and a second server over the same home seeing the sync."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from lookalike.api.main import create_app

from feedserver import FeedServer, Route, feed_server, serve_photos
from imagegen import PRODUCT_CATEGORIES, jpeg_bytes, make_product

HEADER = "id\ttitle\timage_link\tadditional_image_link\tprice\tbrand\tproduct_type\tlink"


@pytest.fixture(scope="module")
def server() -> FeedServer:
    """Nine products (three of each category), each shown in two photos (front, and turned a little)."""
    with feed_server() as running:
        rows = [HEADER]
        for category in PRODUCT_CATEGORIES:
            for seed in range(3):
                sku = f"{category}-{seed}"
                front, turned = serve_photos(running, f"/img/{sku}", make_product(category, seed, 160), 10)
                rows.append(f"{sku}\t{category} {seed}\t{front}\t{turned}\t{20 + seed}.00 EUR\tAcme\t"
                            f"Apparel > {category}\thttps://shop.example/{sku}")
        running.routes["/feed.tsv"] = Route("\n".join(rows).encode(), content_type="text/tab-separated-values")
        yield running


@pytest.fixture
def shop(api_settings, server):
    settings = api_settings.model_copy(update={"fetch_allow_hosts": ["127.0.0.1"], "fetch_timeout": 2.0})
    with TestClient(create_app(settings)) as client:
        yield client, settings


def wait_for(client: TestClient, job: str) -> dict:
    for _ in range(600):
        body = client.get(f"/api/jobs/{job}").json()
        if body["state"] in ("done", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job} did not finish: {body}")


def synced(client: TestClient, server: FeedServer, auth: dict[str, str]) -> dict:
    started = client.post("/api/sync", json={"url": f"{server.url}/feed.tsv"}, headers=auth)
    assert started.status_code == 202, started.text
    assert started.json()["state"] in ("queued", "running", "done")
    return wait_for(client, started.json()["id"])


def test_a_feed_synced_through_the_api_is_searchable_by_product(shop, server, auth):
    client, _ = shop
    job = synced(client, server, auth)
    assert job["state"] == "done", job
    assert job["counts"]["added"] == 9 and job["counts"]["downloaded"] == 18 and job["errors"] == []
    assert client.get("/api/stats").json()["products"] == 9
    product = client.get("/api/products/tees-1").json()
    assert product["attributes"]["title"] == "tees 1" and product["attributes"]["price"] == 21.0
    assert product["category"] == "tees" and [i["source_url"] for i in product["images"]] == [
        f"{server.url}/img/tees-1.jpg", f"{server.url}/img/tees-1-b.jpg"]
    assert client.get(product["images"][0]["thumbnail_url"]).headers["content-type"] == "image/jpeg"

    photo = jpeg_bytes(make_product("tees", 1, 160).rotate(4, fillcolor=(245, 245, 245)))
    grouped = client.post("/api/search", files={"file": ("q.jpg", photo, "image/jpeg")},
                          data={"k": "4", "group_by": "product"}).json()["results"]
    skus = [r["sku"] for r in grouped]
    assert skus[0] == "tees-1" and len(set(skus)) == 4  # four products, not two photos of each
    assert grouped[0]["product"] == product["attributes"]
    flat = client.post("/api/search", files={"file": ("q.jpg", photo, "image/jpeg")}, data={"k": "4"}).json()
    assert [r["sku"] for r in flat["results"]][:2] == ["tees-1", "tees-1"]  # without grouping: both photos first
    more = client.get(f"/api/items/{grouped[0]['id']}/similar", params={"k": 3, "group_by": "product"}).json()
    assert "tees-1" not in [r["sku"] for r in more["results"]]  # its own product's other photo is not "more"

    again = synced(client, server, auth)
    assert again["counts"]["unchanged"] == 9 and again["counts"]["downloaded"] == 0


def test_products_are_upserted_and_deleted(shop, server, auth):
    client, settings = shop
    body = {"attributes": {"title": "Red tee", "price": 9.5}, "category": "tees",
            "images": [f"{server.url}/img/tees-2.jpg"]}
    created = client.put("/api/products/RED-1", json=body, headers=auth)
    assert created.status_code == 200, created.text
    assert created.json()["attributes"] == {"title": "Red tee", "price": 9.5}
    body["attributes"]["price"] = 7.0
    updated = client.put("/api/products/RED-1", json=body, headers=auth).json()
    assert updated["attributes"]["price"] == 7.0 and updated["images"] == created.json()["images"]  # same item

    upload = jpeg_bytes(make_product("dresses", 8, 160))
    form = client.put("/api/products/UP-1", files=[("files", ("front.jpg", upload, "image/jpeg"))],
                      data={"attributes": json.dumps({"title": "Uploaded"}), "category": "dresses"}, headers=auth)
    assert form.status_code == 200, form.text
    assert form.json()["images"][0]["source_url"] is None  # no file path of the server's is shown
    found = client.post("/api/search", files={"file": ("q.jpg", upload, "image/jpeg")}, data={"k": "1"}).json()
    assert found["results"][0]["sku"] == "UP-1" and found["results"][0]["product"] == {"title": "Uploaded"}

    twin = client.put("/api/products/RED-2", json={**body, "images": [f"{server.url}/img/tees-2.jpg"] * 2},
                      headers=auth).json()  # the same picture as RED-1's (a placeholder photo, say)
    assert len(twin["images"]) == 1 and twin["images"][0]["id"] != created.json()["images"][0]["id"]
    assert client.delete("/api/products/RED-1", headers=auth).status_code == 204
    assert client.get("/api/products/RED-1").status_code == 404
    assert client.get(twin["images"][0]["image_url"]).status_code == 200  # its own file survived RED-1's removal
    assert client.delete("/api/products/RED-1", headers=auth).status_code == 404
    photo = jpeg_bytes(make_product("tees", 2, 160))
    results = client.post("/api/search", files={"file": ("q.jpg", photo, "image/jpeg")}, data={"k": "5"}).json()
    results = results["results"]
    assert "RED-1" not in [r["sku"] for r in results]


def test_bad_product_and_sync_requests_get_4xx(shop, server, auth):
    client, _ = shop
    missing = client.put("/api/products/NOPE", json={"images": [f"{server.url}/img/missing.jpg"]}, headers=auth)
    assert missing.status_code == 422 and "HTTP 404" in missing.json()["detail"]
    assert client.get("/api/products/NOPE").status_code == 404
    assert client.put("/api/products/X", json={"images": []}, headers=auth).status_code == 422
    assert client.put("/api/products/X", content=b"{not json", headers=auth).status_code == 422
    not_image = client.put("/api/products/X", files=[("files", ("a.jpg", b"<html>no</html>", "image/jpeg"))],
                           headers=auth)
    assert not_image.status_code == 400 and "HTML page" in not_image.json()["detail"]
    assert client.put("/api/products/X", json={"images": ["http://a/b.jpg"]}).status_code == 401
    assert client.post("/api/sync", json={"url": "file:///etc/passwd"}, headers=auth).status_code == 422
    assert client.post("/api/sync", json={"url": f"{server.url}/feed.tsv"}).status_code == 401
    assert client.get("/api/jobs/0123456789abcdef").status_code == 404
    unreachable = client.post("/api/sync", json={"url": "http://10.9.8.7/feed.csv"}, headers=auth)
    failed = wait_for(client, unreachable.json()["id"])
    assert failed["state"] == "failed" and "non-public address" in failed["detail"]
    bad_feed = client.post("/api/sync", files={"feed": ("feed.csv", b"name,title\nA,B\n", "text/csv")}, headers=auth)
    assert bad_feed.status_code == 422 and "no SKU column" in bad_feed.json()["detail"]


def test_an_uploaded_feed_syncs_and_another_server_sees_it(shop, server, auth):
    client, settings = shop
    feed = (f"sku,image_url,title\nUPL-1,{server.url}/img/dresses-1.jpg,From a file\n"
            "UPL-2,/etc/passwd,A path is not a URL\n").encode()
    started = client.post("/api/sync", files={"feed": ("feed.csv", feed, "text/csv")}, headers=auth)
    job = wait_for(client, started.json()["id"])
    assert job["counts"]["added"] == 1 and job["counts"]["failed"] == 1
    assert job["errors"][0]["sku"] == "UPL-2" and "not an http(s) URL" in job["errors"][0]["reason"]
    with TestClient(create_app(settings)) as other:  # another server process over the same home
        assert other.get("/api/products/UPL-1").json()["attributes"] == {"title": "From a file"}
        assert other.get("/api/stats").json()["products"] == 1


def test_recommendations_leave_out_every_image_of_a_product_shown(shop, server, auth):
    """A shopper shown a product's front photo is not recommended its turned photo: the product was seen."""
    client, _ = shop
    started = client.post("/api/sync", json={"url": f"{server.url}/feed.tsv"}, headers=auth)
    assert wait_for(client, started.json()["id"])["state"] == "done"
    shopper = {"X-Shopper-Id": "looker"}
    query = jpeg_bytes(make_product("tees", 1, 160).rotate(4, fillcolor=(245, 245, 245)))
    shown = client.post("/api/search", files={"file": ("q.jpg", query, "image/jpeg")},
                        data={"k": "3", "group_by": "product"}, headers=shopper).json()["results"]
    shown_skus = {r["sku"] for r in shown}
    assert len(shown_skus) == 3 and None not in shown_skus
    recommended = client.get("/api/recommendations?k=6", headers=shopper).json()["results"]
    assert recommended and not shown_skus & {r["sku"] for r in recommended}
