"""The dashboard's Duplicates view and the "Hide near-duplicates" toggle, in a real headless Chromium against the
real server over the product catalog with planted copies (exact, resized, JPEG quality 35/45, cropped)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from test_dashboard import browser, cards, page, server, shot, wait_for_images  # noqa: F401  (fixtures)
from test_dashboard_feedback import record_bodies

from lookalike.bootstrap import open_engine
from lookalike.config import Settings

from apiserver import ingested
from imagegen import make_product


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, extractor, product_catalog
                    ) -> Settings:
    """A temporary home with the product catalog (36 products + 5 planted copies) ingested."""
    settings = Settings(home=tmp_path_factory.mktemp("dashboard-products") / "home", models_dir=models_dir,
                        batch_size=8, checkpoint_every=8, decode_workers=2, _env_file=None)  # type: ignore[call-arg]
    return ingested(settings, product_catalog[0])


def names_of(server_settings: Settings, ids: list[int]) -> list[str]:
    engine = open_engine(server_settings, reconcile=False)
    try:
        return [Path(engine.catalog.get_item(i).path).name for i in ids]  # type: ignore[union-attr]
    finally:
        engine.catalog.close()


def test_duplicates_view_shows_each_planted_group_side_by_side(page: Page, server_settings: Settings,  # noqa: F811
                                                               product_catalog) -> None:
    with page.expect_response("**/api/duplicates") as response:
        page.click("#tab-duplicates")
    assert response.value.ok
    groups = page.locator("#dup-groups .dup-group")
    expect(groups).to_have_count(5)
    found = [set(names_of(server_settings, [int(i) for i in g.locator(".dup-item").evaluate_all(
        "items => items.map(i => i.dataset.id)")])) for g in groups.all()]
    assert sorted(map(sorted, found)) == sorted(map(sorted, product_catalog[1]))
    expect(page.locator("#dup-summary")).to_contain_text("5 groups, 10 listings")
    threshold = float(page.input_value("#dup-threshold"))
    assert 0.9 < threshold < 1
    first = groups.first.locator(".dup-item").all()
    boxes = [item.bounding_box() for item in first]
    assert boxes[0] and boxes[1] and abs(boxes[0]["y"] - boxes[1]["y"]) < 2 and boxes[1]["x"] > boxes[0]["x"]
    wait_for_images(page, "#dup-groups img")
    shot(page, "24-duplicates")
    # A stricter threshold keeps only the exact copy (0.999999: the aligned pixels vouch down to 0.99999).
    page.fill("#dup-threshold", "0.999999")
    with page.expect_response(re.compile(r"/api/duplicates\?threshold=0\.99999")):
        page.click("#dup-btn")
    expect(groups).to_have_count(1)
    expect(page.locator("#dup-summary")).to_contain_text("1 group, 2 listings")
    # Clicking a listing asks for more like it.
    item = int(groups.first.locator(".dup-item").first.get_attribute("data-id") or 0)
    with page.expect_response(re.compile(rf"/api/items/{item}/similar")):
        groups.first.locator(".dup-item").first.click()
    expect(page.locator("#panel-search")).to_be_visible()
    expect(page.locator("#results-title")).to_contain_text(f"More like item {item}")


def test_near_duplicates_are_hidden_by_default_and_shown_without_the_toggle(
        page: Page, server_settings: Settings, tmp_path: Path) -> None:  # noqa: F811
    query = tmp_path / "tee-3.jpg"
    make_product("tees", 3, 320).save(query, quality=90)
    expect(page.locator("#dedupe")).to_be_checked()
    page.set_input_files("#file", str(query))
    bodies = record_bodies(page, "**/api/search")
    page.click("#search-btn")
    expect(page.locator(".result-card")).to_have_count(5)
    expect(page.locator("#results-meta")).to_contain_text("near-duplicates hidden")
    assert b'name="dedupe"\r\n\r\ntrue' in bodies[0]
    deduped = names_of(server_settings, [c["id"] for c in cards(page)])
    assert len({"tees-3.png", "copy-exact.png"} & set(deduped)) == 1, deduped
    shot(page, "25-deduplicated")
    with page.expect_response("**/api/search"):
        page.uncheck("#dedupe")  # re-runs the query
    expect(page.locator("#results-meta")).not_to_contain_text("near-duplicates hidden")
    expect(page.locator(".result-card")).to_have_count(5)
    plain = names_of(server_settings, [c["id"] for c in cards(page)])
    assert {"tees-3.png", "copy-exact.png"} <= set(plain[:2]), plain
