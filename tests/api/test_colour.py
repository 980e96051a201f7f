"""Colour is part of the look: on a catalog of the same products in several colours, a photo of a green product
brings green products first, and colour variants are neither reported nor hidden as duplicates."""

from __future__ import annotations

import io
import re

import pytest
from fastapi.testclient import TestClient

from lookalike.api.main import create_app
from lookalike.bootstrap import open_engine
from lookalike.search import SearchService

from apiserver import ingested
from imagegen import COLOURS, PRODUCT_CATEGORIES, make_coloured_product, write_colour_catalog


@pytest.fixture(scope="module")
def colour_catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    write_colour_catalog(root, per_category=3)
    return root


@pytest.fixture
def colour_client(settings, colour_catalog):
    with TestClient(create_app(ingested(settings, colour_catalog))) as client:
        yield client


def photo(category: str, seed: int, colour: str) -> bytes:
    """A shopper's photo of a catalog product: rotated, resized, JPEG."""
    image = make_coloured_product(category, seed, colour).rotate(5, fillcolor="white").resize((150, 150))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=70)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def colour_by_content(colour_catalog) -> dict[bytes, str]:
    """The colour in each catalog file's name, by the file's bytes."""
    return {p.read_bytes(): re.search(r"-(\w+)\.png$", p.name).group(1) for p in colour_catalog.rglob("*.png")}


def colour_of(client: TestClient, colour_by_content: dict[bytes, str], result: dict) -> str:
    """The colour in the file name of the result's image."""
    return colour_by_content[client.get(result["image_url"]).content]


def test_same_colour_look_alikes_rank_above_other_colours(colour_client, colour_by_content):
    """Without colour in the ranking 4 of the 36 queries pass (the product's colour variants come right after it)."""
    passed, queries = 0, 0
    for category in PRODUCT_CATEGORIES:
        for seed in range(3):
            for colour in COLOURS:
                upload = {"file": ("photo.jpg", photo(category, seed, colour), "image/jpeg")}
                response = colour_client.post("/api/search", data={"k": "8"}, files=upload)
                assert response.status_code == 200, response.text
                results = response.json()["results"]
                assert all(r["colour_match"] is not None for r in results)
                results = [r for r in results if r["category"] == category]  # the look-alikes
                same = [colour_of(colour_client, colour_by_content, r) == colour for r in results]
                queries += 1
                passed += same == sorted(same, reverse=True) and same[0]  # every same-colour result first
    assert passed >= 0.9 * queries, f"{passed} of {queries}"


def test_colour_variants_are_not_duplicates(colour_client, colour_by_content):
    groups = colour_client.get("/api/duplicates").json()["groups"]
    for group in groups:
        colours = {colour_of(colour_client, colour_by_content, item) for item in group["items"]}
        assert len(colours) == 1, group
    yellow_bag = photo(PRODUCT_CATEGORIES[0], 1, "yellow")
    response = colour_client.post("/api/search", data={"k": "8", "dedupe": "true"},
                                  files={"file": ("photo.jpg", yellow_bag, "image/jpeg")})
    shown = {colour_of(colour_client, colour_by_content, r) for r in response.json()["results"]}
    assert shown == set(COLOURS), "hiding near-duplicates hid a colour variant"


def test_colour_reorders_results_within_a_category_never_across(settings, colour_catalog):
    """Each category keeps the ranks it held without colour: a yellow shoe never moves above a blue bag."""
    engine = open_engine(ingested(settings, colour_catalog))
    try:
        images = [photo(category, 0, colour) for category in PRODUCT_CATEGORIES for colour in COLOURS]
        coloured, plain = SearchService(engine), SearchService(engine, colour_weight=0)
        vectors, palettes = coloured.query_embeddings(images)
        reordered = 0
        for with_colour, without in zip(coloured.search_vectors(vectors, 12, palettes=palettes),
                                        plain.search_vectors(vectors, 12, palettes=palettes), strict=True):
            assert [h.category for h in with_colour.hits] == [h.category for h in without.hits]
            assert [h.rank for h in with_colour.hits] == list(range(1, 13))
            reordered += [h.id for h in with_colour.hits] != [h.id for h in without.hits]
        assert reordered >= len(images) // 2  # colour did re-rank most of them
    finally:
        engine.close()
