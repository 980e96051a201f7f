"""The dashboard's "more like this" / "less like this" + Refine, the "For you" row and several example images,
in a real headless Chromium against the real server (test_dashboard.py's fixtures: 3 categories x 6 images)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect
from test_dashboard import (  # noqa: F401  (fixtures: the server, the browser, a page, query images)
    browser,
    cards,
    page,
    queries,
    search,
    server,
    server_settings,
    shot,
    wait_for_images,
)

from imagegen import circles_or_stripes


def record_bodies(on: Page, pattern: str) -> list[bytes]:
    """The bodies of the requests matching ``pattern`` from now on (multipart uploads included)."""
    bodies: list[bytes] = []

    def record(route: Route) -> None:
        bodies.append(route.request.post_data_buffer or b"")
        route.continue_()

    on.route(pattern, record)
    return bodies


@pytest.fixture(scope="module")
def ambiguous(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Circles blended with stripes: a query between two categories."""
    path = tmp_path_factory.mktemp("ambiguous") / "circles-or-stripes.jpg"
    circles_or_stripes().save(path, quality=90)
    return path


def test_thumbs_up_and_down_then_refine_brings_more_of_the_liked_kind(page: Page, ambiguous: Path) -> None:  # noqa: F811
    page.uncheck("#dedupe")
    first = search(page, ambiguous, k=5)
    counts = {c: sum(card["category"] == c for card in first) for c in ("circles", "stripes")}
    assert all(counts.values()), counts
    liked_category, other = sorted(counts, key=counts.get)
    expect(page.locator("#refine-btn")).to_be_disabled()
    expect(page.locator("#feedback-hint")).to_be_visible()
    for card in first:
        kind = "like" if card["category"] == liked_category else "dislike"
        button = page.locator(f".fb-{kind}[data-id='{card['id']}']")
        button.click()
        expect(button).to_have_attribute("aria-pressed", "true")
    # A second click takes a mark back; a third puts it again.
    kind = "like" if first[0]["category"] == liked_category else "dislike"
    mark = page.locator(f".fb-{kind}[data-id='{first[0]['id']}']")
    mark.click()
    expect(mark).to_have_attribute("aria-pressed", "false")
    mark.click()
    expect(mark).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#refine-btn")).to_be_enabled()
    expect(page.locator("#refine-btn")).to_contain_text(
        f"{counts[liked_category]} more like, {counts[other]} less like")
    shot(page, "20-feedback-marked")
    with page.expect_request("**/api/search/refine") as request:
        page.click("#refine-btn")
    sent = request.value.post_data_json
    assert sorted(sent["liked"]) == sorted(c["id"] for c in first if c["category"] == liked_category)
    assert sent["k"] == 5 and sent["dedupe"] is False
    expect(page.locator("#results-title")).to_contain_text(f"Refined: {counts[liked_category]} liked")
    expect(page.locator(".result-card")).to_have_count(5)
    refined = cards(page)
    assert sum(c["category"] == liked_category for c in refined) > counts[liked_category]
    expect(page.locator(".fb-btn[aria-pressed='true']")).to_have_count(0)  # a fresh list to judge
    expect(page.locator("#refine-btn")).to_be_disabled()
    wait_for_images(page, ".result-card img")
    shot(page, "21-refined")


def test_for_you_row_recommends_unseen_items_after_searches(page: Page, queries) -> None:  # noqa: F811
    expect(page.locator("#for-you")).to_be_hidden()  # a new shopper has no taste yet
    cookie = next(c for c in page.context.cookies() if c["name"] == "lookalike_shopper")
    assert len(cookie["value"]) >= 16
    shown = {c["id"] for c in search(page, queries["checks"], k=3)}
    expect(page.locator("#for-you")).to_be_visible()
    tiles = page.locator("#for-you-list .for-you-item")
    expect(tiles.first).to_be_visible()
    recommended = [int(i) for i in tiles.evaluate_all("ts => ts.map(t => t.dataset.id)")]
    categories = tiles.evaluate_all("ts => ts.map(t => t.dataset.category)")
    assert recommended and not set(recommended) & shown
    assert categories[0] == "checks"
    expect(page.locator("#for-you-note")).to_contain_text("1 search")
    wait_for_images(page, "#for-you-list img")
    shot(page, "22-for-you")
    with page.expect_response(f"**/api/items/{recommended[0]}/similar**"):
        tiles.first.click()
    expect(page.locator("#results-title")).to_contain_text(f"More like item {recommended[0]}")


def test_several_images_search_for_what_they_share(page: Page, queries) -> None:  # noqa: F811
    page.set_input_files("#file", [str(queries["circles"]), str(queries["stripes"])])
    expect(page.locator("#preview-caption")).to_contain_text("+1 more example")
    bodies = record_bodies(page, "**/api/search")
    page.click("#search-btn")
    expect(page.locator(".result-card")).to_have_count(5)
    assert bodies[0].count(b'name="file"') == 2 and b'name="dedupe"\r\n\r\ntrue' in bodies[0]
    expect(page.locator("#results-title")).to_contain_text("circles-query.jpg” + 1 more")
    shot(page, "23-several-examples")
