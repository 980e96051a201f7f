"""Confidence that means something: a re-photographed catalog item's own listing is shown as a surer match than
the merely same-category results after it."""

import io

from imagegen import make_product


def test_the_very_item_gets_a_higher_confidence_than_same_category_look_alikes(product_client, product_catalog):
    photo = make_product("tees", 4, 320).rotate(4, fillcolor="white").resize((300, 300))
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=50)
    response = product_client.post("/api/search", files={"file": ("photo.jpg", buffer.getvalue(), "image/jpeg")},
                                   data={"k": "6", "dedupe": "false"})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    original = (product_catalog[0] / "tees" / "tees-4.png").read_bytes()
    assert product_client.get(results[0]["image_url"]).content == original  # the photographed item comes first
    look_alikes = [r for r in results[1:] if r["category"] == "tees"]
    assert look_alikes, "the catalog has other tees"
    assert results[0]["score"] - look_alikes[0]["score"] >= 0.02
    assert results[0]["confidence"] - look_alikes[0]["confidence"] >= 0.05, (results[0], look_alikes[0])
