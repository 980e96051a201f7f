"""The dashboard in a real headless Chromium (Debian's, driven by Playwright) against the real server on a free
localhost port, over a small generated catalog. Screenshots of the key steps go to test-artifacts/screenshots/."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from lookalike.api.main import create_app
from lookalike.config import Settings
from lookalike.evaluation.metrics import retrieval_metrics
from lookalike.evaluation.report import write_report

from apiserver import ingested, running
from imagegen import CATEGORIES, make_image

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
    # A fake camera, so the getUserMedia capture path runs too.
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

expect.set_options(timeout=15_000)


def chromium_path() -> str:
    """Debian's Chromium (CI installs it); the tests fail, rather than skip, without it."""
    path = os.environ.get("LOOKALIKE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.fail(f"Chromium not found at {path}: install it (`apt-get install -y chromium`) or point "
                    "LOOKALIKE_CHROMIUM at a Chromium binary. The dashboard tests need a real browser.")
    return path


# ---- fixtures: one server and one browser per module ------------------------------------------------------


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, extractor, catalog_dir: Path
                    ) -> Settings:
    """A temporary home with the generated catalog (3 categories x 6 images) ingested."""
    settings = Settings(home=tmp_path_factory.mktemp("dashboard") / "home", models_dir=models_dir, batch_size=8,
                        checkpoint_every=8, decode_workers=2, _env_file=None)  # type: ignore[call-arg]
    return ingested(settings, catalog_dir)


@pytest.fixture(scope="module")
def server(server_settings: Settings) -> Iterator[str]:
    """The real app under uvicorn on a free port, in a background thread."""
    with running(create_app(server_settings)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def open_dashboard(browser: Browser, server: str, path: str = "/", **context_options) -> tuple[Page, list[str]]:
    context = browser.new_context(viewport=DESKTOP, **context_options)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server + path)
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return page, errors


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    page, errors = open_dashboard(browser, server)
    yield page
    page.context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="module")
def queries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One query image per category (not in the catalog), plus a named one for the history."""
    folder = tmp_path_factory.mktemp("dashboard-queries")
    paths = {}
    for category in CATEGORIES:
        paths[category] = folder / f"{category}-query.jpg"
        make_image(category, 500).save(paths[category], format="JPEG")
    paths["history"] = folder / "my-striped-shirt.png"
    make_image("stripes", 501, size=160).save(paths["history"])
    return paths


# ---- helpers ----------------------------------------------------------------------------------------------


def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def cards(page: Page) -> list[dict]:
    return page.locator(".result-card").evaluate_all(
        """cards => cards.map(c => ({rank: Number(c.dataset.rank), id: Number(c.dataset.id),
            score: Number(c.dataset.score), similarity: Number(c.dataset.similarity),
            confidence: Number(c.dataset.confidence), category: c.dataset.category,
            text: c.innerText}))""")


def search(page: Page, image: Path, *, k: int | None = None, category: str | None = None) -> list[dict]:
    """Choose settings and a file, press Find Similar, wait for the results; returns the cards."""
    if k is not None:
        page.select_option("#k", str(k))
    if category is not None:
        page.select_option("#category", category)
    page.set_input_files("#file", str(image))
    with page.expect_response("**/api/search") as response:
        page.click("#search-btn")
    assert response.value.ok, response.value.text()
    expect(page.locator("#loading")).to_be_hidden()
    expect(page.locator(".result-card")).to_have_count(int(page.input_value("#k")))
    return cards(page)


def assert_ranked(found: list[dict], k: int) -> None:
    assert [c["rank"] for c in found] == list(range(1, k + 1))
    scores = [c["score"] for c in found]
    for category in {c["category"] for c in found}:  # colour re-ranks each category among the ranks it holds
        within = [c["score"] for c in found if c["category"] == category]
        assert within == sorted(within, reverse=True), scores
    assert all(-1.0 <= s <= 1.0001 for s in scores)
    assert all(0.0 <= c["confidence"] <= 1.0 for c in found)


def wait_for_images(page: Page, selector: str) -> None:
    page.wait_for_function(
        "s => { const imgs = [...document.querySelectorAll(s)];"
        " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }", arg=selector)


def no_horizontal_overflow(page: Page) -> None:
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page scrolls sideways: {width[0]}px content in a {width[1]}px viewport"


def write_tiny_report(reports: Path) -> list[str]:
    """An evaluation report from random embeddings in three clusters (two rows: a model and a baseline)."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 16))
    q_labels, g_labels = np.arange(12) % 3, np.arange(30) % 3

    def embed(labels: np.ndarray, noise: float) -> np.ndarray:
        x = centers[labels] + noise * rng.normal(size=(len(labels), 16))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    rows = {}
    for name, noise in (("trained head / test", 0.7), ("backbone only / test", 1.5)):
        rows[name] = retrieval_metrics(embed(q_labels, noise), q_labels, embed(g_labels, noise), g_labels,
                                       [CATEGORIES[i] for i in q_labels], [CATEGORIES[i] for i in g_labels])
    write_report(reports, rows, {"catalog": "generated test catalog", "backbone": "efficientnet-lite0"})
    return list(rows)


# ---- tests ------------------------------------------------------------------------------------------------


def test_upload_shows_loading_then_k_ranked_cards_and_a_new_search_replaces_them(page: Page, queries) -> None:
    shot(page, "01-start")
    expect(page.locator("#search-btn")).to_be_disabled()
    held: list[Route] = []
    page.route("**/api/search", lambda route: held.append(route))  # hold the request, so the loading state can be seen
    page.select_option("#k", "3")
    page.set_input_files("#file", str(queries["circles"]))
    expect(page.locator("#preview-img")).to_be_visible()
    page.click("#search-btn")
    expect(page.locator("#loading")).to_be_visible()
    expect(page.locator("#results")).to_have_attribute("aria-busy", "true")
    shot(page, "02-loading")
    while not held:
        page.wait_for_timeout(20)
    held.pop().continue_()
    expect(page.locator("#loading")).to_be_hidden()
    expect(page.locator(".result-card")).to_have_count(3)
    expect(page.locator("#results")).to_have_attribute("aria-busy", "false")
    first = cards(page)
    assert_ranked(first, 3)
    assert first[0]["category"] == "circles"
    assert re.search(r"#1\b", first[0]["text"]) and "circles" in first[0]["text"]
    assert f"{first[0]['similarity']:.3f}" in first[0]["text"]
    expect(page.locator("#results-title")).to_contain_text("circles-query.jpg")
    wait_for_images(page, ".result-card img")
    shot(page, "03-results")

    # A second search: the old cards go as soon as it starts, and the new ones replace them.
    page.select_option("#k", "5")  # re-runs the current query with the new k
    expect(page.locator(".result-card")).to_have_count(0)
    expect(page.locator("#loading")).to_be_visible()
    while not held:
        page.wait_for_timeout(20)
    held.pop().continue_()
    expect(page.locator(".result-card")).to_have_count(5)
    page.unroute("**/api/search")
    second = search(page, queries["checks"])
    assert len(second) == 5
    assert_ranked(second, 5)
    assert second[0]["category"] == "checks"
    expect(page.locator("#results-title")).to_contain_text("checks-query.jpg")


def test_category_filter_keeps_only_that_category(page: Page, queries) -> None:
    found = search(page, queries["circles"], k=5, category="stripes")
    assert {c["category"] for c in found} == {"stripes"}
    assert_ranked(found, 5)
    expect(page.locator("#results-meta")).to_contain_text("only stripes")
    # Changing the filter re-runs the same query.
    with page.expect_response("**/api/search"):
        page.select_option("#category", "checks")
    expect(page.locator(".result-card[data-category='checks']")).to_have_count(5)
    expect(page.locator(".result-card:not([data-category='checks'])")).to_have_count(0)
    shot(page, "04-filtered")


def test_clicking_a_card_shows_more_like_it(page: Page, queries) -> None:
    found = search(page, queries["stripes"], k=5)
    chosen = found[1]
    with page.expect_response(re.compile(rf"/api/items/{chosen['id']}/similar\?k=5")) as response:
        page.locator(f".result-card[data-id='{chosen['id']}']").click()
    assert response.value.ok
    expect(page.locator("#results-title")).to_contain_text(f"More like item {chosen['id']}")
    expect(page.locator(".result-card")).to_have_count(5)
    similar = cards(page)
    assert_ranked(similar, 5)
    assert chosen["id"] not in {c["id"] for c in similar}
    assert similar[0]["category"] == chosen["category"]
    shot(page, "05-more-like-this")
    # The keyboard works too: Enter on a focused card.
    next_id = similar[0]["id"]
    page.locator(".result-card").first.focus()
    with page.expect_response(re.compile(rf"/api/items/{next_id}/similar")):
        page.keyboard.press("Enter")
    expect(page.locator("#results-title")).to_contain_text(f"More like item {next_id}")


def test_crop_box_sends_only_the_selected_region(page: Page, queries) -> None:
    page.set_input_files("#file", str(queries["checks"]))
    expect(page.locator("#crop-hint")).to_be_visible()
    box = page.locator("#preview-img").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.15)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.7, steps=6)
    page.mouse.up()
    expect(page.locator("#crop-box")).to_be_visible()
    expect(page.locator("#preview-caption")).to_contain_text("selected")
    shot(page, "06-crop", full_page=False)
    bodies: list[bytes] = []

    def record(route: Route) -> None:
        bodies.append(route.request.post_data_buffer or b"")
        route.continue_()

    page.route("**/api/search", record)
    page.click("#search-btn")
    expect(page.locator(".result-card")).to_have_count(5)
    assert b'filename="crop-of-checks-query.jpg"' in bodies[0] and b"Content-Type: image/jpeg" in bodies[0]
    page.click("#crop-clear")
    expect(page.locator("#crop-box")).to_be_hidden()
    page.click("#search-btn")
    expect(page.locator("#loading")).to_be_hidden()
    expect(page.locator(".result-card")).to_have_count(5)
    assert len(bodies) == 2 and b'filename="checks-query.jpg"' in bodies[1]


def test_camera_capture_with_getusermedia(browser: Browser, server: str) -> None:
    page, errors = open_dashboard(browser, server, permissions=["camera"])
    page.click("#camera-btn")
    expect(page.locator("#camera")).to_be_visible()
    page.click("#capture-btn")
    expect(page.locator("#camera")).to_be_hidden()
    expect(page.locator("#preview-caption")).to_contain_text("camera-")
    with page.expect_response("**/api/search") as response:
        page.click("#search-btn")
    assert response.value.ok
    expect(page.locator(".result-card")).to_have_count(5)
    page.context.close()
    assert not errors


def test_bad_file_empty_catalog_and_server_errors_show_inline_messages(page: Page, queries) -> None:
    search(page, queries["circles"], k=3)
    page.set_input_files("#file", files=[{"name": "notes.jpg", "mimeType": "image/jpeg",
                                          "buffer": b"these are my shopping notes, not a photo"}])
    expect(page.locator("#preview-fallback")).to_be_visible()
    with page.expect_response("**/api/search") as response:
        page.click("#search-btn")
    assert response.value.status == 400
    message = page.locator("#message")
    expect(message).to_be_visible()
    expect(message).to_have_attribute("role", "alert")
    expect(message).to_contain_text(response.value.json()["detail"])
    expect(page.locator(".result-card")).to_have_count(0)
    shot(page, "07-bad-file")

    # The API's own words for an empty catalog (409) and a generic line for a server error without JSON.
    page.route("**/api/search", lambda route: route.fulfill(
        status=409, content_type="application/json", body='{"detail": "the catalog is empty: ingest images first"}'))
    page.set_input_files("#file", str(queries["circles"]))
    expect(message).to_be_hidden()
    page.click("#search-btn")
    expect(message).to_contain_text("the catalog is empty: ingest images first")
    expect(page.locator(".result-card")).to_have_count(0)
    page.unroute("**/api/search")
    page.route("**/api/search", lambda route: route.fulfill(status=500, body="Internal Server Error"))
    page.click("#search-btn")
    expect(message).to_contain_text("HTTP 500")
    expect(page.locator(".result-card")).to_have_count(0)


def test_history_lists_the_last_search(page: Page, queries) -> None:
    search(page, queries["history"], k=3)
    latest = page.locator("#history .history-item").first
    expect(latest.locator(".history-query")).to_have_text("my-striped-shirt.png")
    expect(latest).to_contain_text("k=3")
    expect(latest.locator(".history-thumb")).to_have_count(3)
    wait_for_images(page, "#history .history-item:first-child img")
    top = cards(page)[0]["id"]
    with page.expect_response(re.compile(rf"/api/items/{top}/similar")):
        latest.locator(".history-thumb").first.click()
    expect(page.locator("#results-title")).to_contain_text(f"More like item {top}")


def test_tabs_work_by_keyboard(page: Page) -> None:
    page.locator("#tab-search").focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator("#tab-map")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#tab-map")).to_be_focused()
    expect(page.locator("#panel-map")).to_be_visible()
    expect(page.locator("#panel-search")).to_be_hidden()
    page.keyboard.press("End")
    expect(page.locator("#tab-accuracy")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#panel-accuracy")).to_be_visible()
    page.keyboard.press("Home")
    expect(page.locator("#tab-search")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#tab-map")).to_have_attribute("aria-selected", "false")
    expect(page.locator("#panel-search")).to_be_visible()


def test_embedding_map_plots_the_catalog_and_highlights_the_last_results(page: Page, queries) -> None:
    found = search(page, queries["circles"], k=3)
    page.click("#tab-map")
    expect(page.locator("#map-plot .plot-container")).to_be_visible(timeout=60_000)
    points = page.locator("#map-plot .scatterlayer .point")
    expect(points.first).to_be_visible()
    assert points.count() >= 18 + len(found)  # every catalog item, the ringed results and the query star
    legend = page.locator("#map-plot .legendtext").all_text_contents()
    assert {"checks", "circles", "stripes", "last results"} <= set(legend), legend
    expect(page.locator("#map-legend-note")).to_contain_text("18 items")
    target = points.nth(2).bounding_box()
    assert target is not None
    page.mouse.move(target["x"] + target["width"] / 2, target["y"] + target["height"] / 2)
    hover = page.locator("#map-hover")
    expect(hover).to_be_visible()
    expect(page.locator("#map-hover-img")).to_have_attribute("src", re.compile(r"/api/items/\d+/image\?size=thumb"))
    expect(page.locator("#map-hover-caption")).to_contain_text(re.compile(r"Item \d+ · (checks|circles|stripes)"))
    wait_for_images(page, "#map-hover-img")
    shot(page, "08-embedding-map", full_page=False)
    # Clicking a point asks for more like that item.
    item = int(hover.get_attribute("data-id") or 0)
    with page.expect_response(re.compile(rf"/api/items/{item}/similar")):
        page.mouse.click(target["x"] + target["width"] / 2, target["y"] + target["height"] / 2)
    expect(page.locator("#panel-search")).to_be_visible()
    expect(page.locator("#results-title")).to_contain_text(f"More like item {item}")


def test_accuracy_view_without_then_with_a_report(page: Page, server_settings: Settings) -> None:
    page.click("#tab-accuracy")
    empty = page.locator("#report-empty")
    expect(empty).to_be_visible()
    expect(empty).to_contain_text("No evaluation yet")
    expect(empty).to_contain_text("lookalike evaluate")
    expect(page.locator("#report")).to_be_hidden()
    shot(page, "09-accuracy-empty", full_page=False)

    names = write_tiny_report(server_settings.home / "reports")
    page.click("#tab-search")
    page.click("#tab-accuracy")  # opening the tab fetches the latest report
    rows = page.locator("#metrics-table tbody tr")
    expect(rows).to_have_count(2)
    expect(empty).to_be_hidden()
    assert rows.locator("th").all_inner_texts() == names
    headers = page.locator("#metrics-table thead th").all_inner_texts()
    assert {"precision@1", "recall@5", "mAP@10", "NDCG@10"} <= set(headers), headers
    for value in rows.first.locator("td").all_inner_texts()[1:]:
        assert 0.0 <= float(value) <= 1.0
    expect(page.locator("#confusion tbody tr")).to_have_count(3)
    expect(page.locator("#per-category tbody tr")).to_have_count(3)
    wait_for_images(page, "#report .plot-figure img")
    shot(page, "10-accuracy-report")


def test_phone_viewport_has_no_horizontal_overflow(browser: Browser, server: str, queries) -> None:
    page, errors = open_dashboard(browser, server, is_mobile=True, has_touch=True, device_scale_factor=2)
    page.set_viewport_size(PHONE)
    no_horizontal_overflow(page)
    expect(page.locator("#camera-input")).to_have_attribute("capture", "environment")
    search(page, queries["stripes"], k=5)
    wait_for_images(page, ".result-card img")
    no_horizontal_overflow(page)
    card = page.locator(".result-card").first.bounding_box()
    assert card is not None and card["x"] >= 0 and card["x"] + card["width"] <= PHONE["width"]
    shot(page, "11-phone-results")
    page.click("#tab-map")
    expect(page.locator("#map-plot .plot-container")).to_be_visible(timeout=60_000)
    no_horizontal_overflow(page)
    shot(page, "12-phone-map", full_page=False)
    page.click("#tab-accuracy")
    expect(page.locator("#report-loading")).to_be_hidden()
    no_horizontal_overflow(page)
    shot(page, "13-phone-accuracy")
    page.context.close()
    assert not errors
