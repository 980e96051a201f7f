"""GET /api/duplicates over a catalog with planted copies (exact, resized, JPEG quality 35/45, cropped)."""

from __future__ import annotations

from pathlib import Path


def file_name(client, item_id: int) -> str:
    return Path(client.app.state.lookalike.engine.catalog.get_item(item_id).path).name


def test_default_threshold_finds_every_planted_copy_and_nothing_else(product_client, product_catalog):
    response = product_client.get("/api/duplicates")
    assert response.status_code == 200, response.text
    body = response.json()
    found = [{file_name(product_client, item["id"]) for item in group["items"]} for group in body["groups"]]
    assert sorted(map(sorted, found)) == sorted(map(sorted, product_catalog[1]))
    calibration = body["calibration"]
    assert calibration["separable"] and calibration["copy_low"] > calibration["distinct_high"]
    assert body["threshold"] == calibration["threshold"]
    assert calibration["distinct_high"] < body["threshold"] < calibration["copy_low"]
    assert body["groups_total"] == 5 and body["items_total"] == 10
    for group in body["groups"]:
        assert len({item["category"] for item in group["items"]}) == 1
        assert body["threshold"] <= group["min_score"] <= group["max_score"] <= 1.0001
        assert [i["id"] for i in group["items"]] == sorted(i["id"] for i in group["items"])


def test_threshold_and_limit_parameters(product_client):
    from lookalike.duplicates import PIXEL_WIDTH, candidate_floor

    strict = product_client.get("/api/duplicates", params={"threshold": 0.9999}).json()
    found = {frozenset(file_name(product_client, item["id"]) for item in group["items"]): group["min_score"]
             for group in strict["groups"]}
    # the exact copy by its similarity; the resized one, just below it, because its pixels match once aligned
    exact, resized = frozenset({"copy-exact.png", "tees-3.png"}), frozenset({"copy-resized.png", "dresses-2.png"})
    assert found.keys() == {exact, resized}
    assert found[exact] >= 0.9999 and candidate_floor(0.9999, PIXEL_WIDTH) <= found[resized] < 0.9999
    loose = product_client.get("/api/duplicates", params={"threshold": 0.5, "limit": 1}).json()
    assert len(loose["groups"]) == 1 and loose["items_total"] > 10  # everything is alike at 0.5
    for bad in ("0", "1.5", "-0.2", "abc"):
        response = product_client.get("/api/duplicates", params={"threshold": bad})
        assert response.status_code == 422 and "threshold" in response.json()["detail"]
    assert product_client.get("/api/duplicates", params={"limit": 0}).status_code == 422
