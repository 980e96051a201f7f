"""The dashboard's filters in a real headless Chromium over a catalog synced from a feed: choosing a price range and
a brand leaves only matching cards and updates the facet counts, without a new upload; reloading the page keeps
the filters and the search."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page, expect
from test_dashboard import browser, page, search, server, shot, wait_for_images  # noqa: F401  (fixtures)

from lookalike.bootstrap import feed_sync, open_engine
from lookalike.config import Settings
from lookalike.data.feeds import read_feed

from feedserver import feed_server, serve_photos
from imagegen import PRODUCT_CATEGORIES, make_product

BRANDS = ("Acme", "Bolt", "Cirrus")


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, extractor) -> Settings:
    """18 products (6 of each category), each with a brand, a price from 10 to 95 and a stock flag; and a dataset's
    bookkeeping columns (a row index, a class number), which are not offered as filters."""
    settings = Settings(home=tmp_path_factory.mktemp("dashboard-filters") / "home", models_dir=models_dir,
                        batch_size=8, fetch_allow_hosts=["127.0.0.1"], _env_file=None)  # type: ignore[call-arg]
    with feed_server() as images:
        rows = []  # JSON lines, so that the dataset's columns are numbers, as in an imported dataset
        for c, category in enumerate(PRODUCT_CATEGORIES):
            for seed in range(6):
                n = c * 6 + seed
                sku = f"P{n:02d}"
                front, _ = serve_photos(images, f"/{sku}", make_product(category, seed, 160))
                stock = "in stock" if n % 4 else "out of stock"
                rows.append(json.dumps({"sku": sku, "title": f"{category} {seed}", "image_link": front,
                                        "price": f"{10 + 5 * n}.00", "currency": "EUR", "brand": BRANDS[n % 3],
                                        "product_type": category, "availability": stock, "index": n, "label": c}))
        with open_engine(settings) as engine, feed_sync(settings, engine) as syncer:
            report = syncer.run(read_feed("\n".join(rows).encode(), "feed.jsonl"))
    assert report.added == 18
    return settings


def card_products(view: Page) -> list[dict]:
    return view.locator(".result-item").evaluate_all(
        """items => items.map(i => ({sku: i.querySelector('.result-card').dataset.sku,
            price: Number((i.querySelector('.product-price')?.textContent || '').replace(/[^0-9.]/g, '')),
            brand: i.querySelector('.product-brand')?.textContent}))""")


def test_a_price_range_and_a_brand_narrow_the_results_and_survive_a_reload(page: Page, tmp_path: Path) -> None:  # noqa: F811
    filters = page.locator("#filters")
    expect(filters).to_be_visible()
    expect(filters.locator('fieldset[data-filter="brand"] label')).to_have_count(3)
    expect(filters.locator('fieldset[data-filter="brand"]')).to_contain_text("Bolt(6)")
    expect(filters.locator('fieldset[data-filter="price"]')).to_have_count(1)
    expect(filters.locator('fieldset[data-filter="index"], fieldset[data-filter="label"]')).to_have_count(0)
    photo = tmp_path / "photo.jpg"
    make_product("tees", 2, 160).rotate(5, fillcolor=(245, 245, 245)).save(photo)
    found = search(page, photo, k=5)
    assert len(found) == 5

    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.post_data or "") if r.url.endswith("/api/search") else None)
    page.fill('input[data-filter="price"][data-bound="max"]', "60")
    page.check('input[data-filter="brand"][value="Bolt"]')
    page.wait_for_function("""() => new URLSearchParams(location.search).get('filter')
        === JSON.stringify({brand: ['Bolt'], price: {lte: 60}})""")
    expect(page.locator("#loading")).to_be_hidden()
    bolt_up_to_60 = [n for n in range(18) if BRANDS[n % 3] == "Bolt" and 10 + 5 * n <= 60]
    expect(page.locator("#results-meta")).to_contain_text(f"{len(bolt_up_to_60)} match the filters")
    assert uploads and all("query_id" in u and "filename=" not in u for u in uploads)  # the stored query: no upload
    expect(page.locator(".result-card")).to_have_count(min(5, len(bolt_up_to_60)))
    products = card_products(page)
    assert all(p["brand"] == "Bolt" and p["price"] <= 60 for p in products)
    brand_counts = filters.locator('fieldset[data-filter="brand"]')
    expect(brand_counts).to_contain_text(f"Bolt({len(bolt_up_to_60)})")
    expect(brand_counts).to_contain_text("Acme(0)")
    wait_for_images(page, ".result-card img")
    shot(page, "31-filtered")

    address = urlparse(page.url)
    state = parse_qs(address.query)
    assert json.loads(state["filter"][0]) == {"brand": ["Bolt"], "price": {"lte": 60}} and "q" in state
    with page.expect_response(re.compile(r"/api/search$")):
        page.reload()
    expect(page.locator('input[data-filter="brand"][value="Bolt"]')).to_be_checked()
    expect(page.locator('input[data-filter="price"][data-bound="max"]')).to_have_value("60")
    expect(page.locator(".result-card").first).to_be_visible()
    assert card_products(page) == products
