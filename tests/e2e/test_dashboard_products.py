"""The dashboard over a catalog synced from a product feed, in a real headless Chromium: one card per product
(each product has two photos), with its title, price and a link to the shop (never a script link)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from test_dashboard import browser, page, search, server, shot, wait_for_images  # noqa: F401  (fixtures)

from lookalike.bootstrap import feed_sync, open_engine
from lookalike.config import Settings
from lookalike.data.feeds import read_feed

from feedserver import feed_server, serve_photos
from imagegen import PRODUCT_CATEGORIES, make_product


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, extractor) -> Settings:
    """A home synced from a feed of 12 products, each shown front-on and turned (two catalog items)."""
    settings = Settings(home=tmp_path_factory.mktemp("dashboard-feed") / "home", models_dir=models_dir,
                        batch_size=8, fetch_allow_hosts=["127.0.0.1"], _env_file=None)  # type: ignore[call-arg]
    with feed_server() as images:
        rows = ["sku,title,image_link,additional_image_link,price,currency,brand,product_type,link"]
        for category in PRODUCT_CATEGORIES:
            for seed in range(4):
                sku = f"{category.upper()}-{seed}"
                front, turned = serve_photos(images, f"/{sku}", make_product(category, seed, 160))
                link = "javascript:alert(1)" if sku == "TEES-3" else f"https://shop.example/p/{sku}"
                rows.append(f"{sku},{category.title()} no. {seed},{front},{turned},{19 + seed}.90,EUR,Acme,{category},"
                            f"{link}")
        feed = read_feed("\n".join(rows).encode(), "feed.csv")
        with open_engine(settings) as engine, feed_sync(settings, engine) as syncer:
            report = syncer.run(feed)
    assert report.added == 12 and not report.failures
    return settings


def test_results_show_one_card_per_product_with_its_title_price_and_link(page: Page, tmp_path: Path) -> None:  # noqa: F811
    query = tmp_path / "photo-of-a-tee.jpg"
    make_product("tees", 1, 160).rotate(4, fillcolor=(245, 245, 245)).save(query)
    found = search(page, query, k=5)
    items = page.locator(".result-item")
    skus = [text.split("SKU ")[1].split()[0] for text in (c["text"] for c in found)]
    assert skus[0] == "TEES-1" and len(set(skus)) == 5  # five products, not two photos of each
    first = items.first
    expect(first.locator(".product-title")).to_have_text("Tees no. 1")
    expect(first.locator(".product-price")).to_contain_text("20.90")
    expect(first.locator(".product-link")).to_have_attribute("href", "https://shop.example/p/TEES-1")
    expect(first.locator(".product-link")).to_have_attribute("rel", "noopener noreferrer")
    hrefs = page.locator(".product-link").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert all(h.startswith("https://shop.example/") for h in hrefs)  # TEES-3's script link is not shown
    assert len(hrefs) == 5 - skus.count("TEES-3")
    wait_for_images(page, ".result-card img")
    shot(page, "30-products")
