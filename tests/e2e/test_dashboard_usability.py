"""Usability of the dashboard for phone, keyboard and touch users (issue #16, item 7), in a real headless Chromium
against the real server: every tab reachable at 390 px, a skip link and results before history in tab order, the
embedding map by touch and keyboard with its progress shown, large photos shrunk before upload, no refine hint
without results, and a multi-image search naming the unreadable file."""

from __future__ import annotations

import io
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect
from test_dashboard import (  # noqa: F401  (fixtures: the browser, a page; helpers)
    PHONE,
    browser,
    cards,
    open_dashboard,
    page,
    queries,
    shot,
)

from lookalike import embedding_map
from lookalike.api.main import create_app
from lookalike.config import Settings

from apiserver import ingested, running
from imagegen import make_image

UPLOAD_LIMIT_MB = 1.0


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, extractor, catalog_dir: Path
                    ) -> Settings:
    """The generated catalog (3 categories x 6) plus a category of one item, behind a 1 MB upload limit."""
    catalog = tmp_path_factory.mktemp("usability") / "catalog"
    shutil.copytree(catalog_dir, catalog)
    (catalog / "scarves").mkdir()
    make_image("circles", 900).save(catalog / "scarves" / "scarf.png")
    settings = Settings(home=catalog.parent / "home", models_dir=models_dir, batch_size=8, checkpoint_every=8,
                        decode_workers=2, max_upload_mb=UPLOAD_LIMIT_MB, _env_file=None)  # type: ignore[call-arg]
    return ingested(settings, catalog)


@pytest.fixture(scope="module")
def server(server_settings: Settings) -> Iterator[str]:
    with running(create_app(server_settings)) as url:
        yield url


@pytest.fixture
def phone(browser: Browser, server: str) -> Iterator[Page]:  # noqa: F811
    """The dashboard on a 390 x 844 touch screen."""
    opened, errors = open_dashboard(browser, server, is_mobile=True, has_touch=True, device_scale_factor=2)
    opened.set_viewport_size(PHONE)
    yield opened
    opened.context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_every_tab_is_visible_and_clickable_on_a_390px_phone(phone: Page) -> None:
    shot(phone, "usability-01-phone-tabs", full_page=False)
    for tab in phone.locator('[role="tab"]').all():
        box = tab.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (tab.inner_text(), box)
        tab.tap()
        expect(tab).to_have_attribute("aria-selected", "true")


def choose_files(on: Page, *files: Path | dict) -> None:
    """Choose files (paths or {name, mimeType, buffer}) in the file input, as a user picking them would."""
    on.set_input_files("#file", files=[f if isinstance(f, dict) else {
        "name": f.name, "mimeType": "image/jpeg" if f.suffix == ".jpg" else "image/png", "buffer": f.read_bytes()}
        for f in files])


def search_by_keyboard(on: Page, image: Path) -> None:
    """Choose a file, then press Enter on Find Similar; waits for the results."""
    choose_files(on, image)
    on.locator("#search-btn").focus()
    with on.expect_response("**/api/search") as response:
        on.keyboard.press("Enter")
    assert response.value.ok
    expect(on.locator(".result-card").first).to_be_visible()
    expect(on.locator("#history .history-thumb").first).to_be_visible()


def focused(on: Page) -> str:
    """What has the keyboard focus: "result", "history", "for-you" or the element's id (or tag)."""
    return on.evaluate("""() => { const e = document.activeElement;
        if (e.closest('.result-item')) return 'result';
        if (e.closest('.history-card')) return 'history';
        if (e.closest('#for-you')) return 'for-you';
        return e.id || e.tagName.toLowerCase(); }""")


def tab_order(on: Page, presses: int) -> list[str]:
    order = []
    for _ in range(presses):
        on.keyboard.press("Tab")
        order.append(focused(on))
    return order


def test_a_skip_link_comes_first_and_the_results_come_before_the_history(page: Page, queries) -> None:  # noqa: F811
    page.keyboard.press("Tab")
    skip = page.locator("#skip-to-results")
    expect(skip).to_be_focused()
    expect(skip).to_have_text("Skip to results")
    box = skip.bounding_box()
    assert box is not None and box["x"] >= 0 and box["y"] >= 0 and box["width"] > 40  # visible while focused
    shot(page, "usability-02-skip-link", full_page=False)
    page.keyboard.press("Tab")
    box = skip.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 0  # off screen otherwise

    search_by_keyboard(page, queries["stripes"])
    search_by_keyboard(page, queries["circles"])  # two searches: the history has thumbnails to tab through
    order = tab_order(page, 30)
    assert order[0] == "result", order  # straight from Find Similar to the first result
    assert "history" in order and order.index("history") > max(i for i, f in enumerate(order) if f == "result")
    # The skip link jumps there from the top of the page, and from another tab.
    page.click("#tab-duplicates")
    skip.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#panel-search")).to_be_visible()
    page.keyboard.press("Tab")
    assert focused(page) == "result"
    expect(page.locator(".result-card").first).to_be_focused()


def test_the_refine_hint_shows_only_when_there_are_results_to_mark(page: Page, queries) -> None:  # noqa: F811
    hint, refine = page.locator("#feedback-hint"), page.locator("#refine-btn")
    page.select_option("#category", "scarves")  # the one scarf: results, then none "more like" it
    choose_files(page, queries["circles"])
    with page.expect_response("**/api/search"):
        page.click("#search-btn")
    expect(page.locator(".result-card")).to_have_count(1)
    expect(hint).to_be_visible()
    with page.expect_response("**/api/items/*/similar*") as response:
        page.locator(".result-card").click()
    assert response.value.ok and response.value.json()["results"] == []
    expect(page.locator("#results-empty")).to_contain_text("Nothing matched")
    expect(hint).to_be_hidden()
    expect(refine).to_be_hidden()


def test_a_multi_image_search_with_an_unreadable_file_names_it(page: Page, queries) -> None:  # noqa: F811
    notes = {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"buy milk, not a photo of a shirt"}
    choose_files(page, queries["stripes"], notes)
    expect(page.locator("#preview-caption")).to_contain_text("+1 more example")
    with page.expect_response("**/api/search") as response:
        page.click("#search-btn")
    assert response.value.status == 400
    message = page.locator("#message")
    expect(message).to_be_visible()
    expect(message).to_contain_text(response.value.json()["detail"])  # the server's words, verbatim
    expect(message).to_contain_text("notes.txt")


@pytest.fixture(scope="module")
def big_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 48-megapixel (8000 x 6000) noisy JPEG: at quality 20, more than the 1 MB upload limit."""
    path = tmp_path_factory.mktemp("big") / "IMG_4000.jpg"
    noise = Image.effect_noise((8000, 6000), 40).convert("RGB")
    Image.blend(make_image("stripes", 7).resize((8000, 6000)), noise, 0.25).save(path, quality=20)
    assert path.stat().st_size > UPLOAD_LIMIT_MB * 2**20
    return path


def uploaded_image(body: bytes) -> tuple[str, Image.Image, int]:
    """The first file part of a multipart body: its file name, the image, its size in bytes."""
    head, _, rest = body.partition(b"\r\n\r\n")
    data = rest[:rest.index(b"\r\n--")]
    name = head.split(b'filename="')[1].split(b'"')[0].decode()
    return name, Image.open(io.BytesIO(data)), len(data)


def test_a_48_megapixel_photo_is_shrunk_before_upload_and_found(page: Page, big_photo: Path) -> None:  # noqa: F811
    bodies: list[bytes] = []
    page.route("**/api/search", lambda route: (bodies.append(route.request.post_data_buffer or b""),
                                               route.continue_()))
    choose_files(page, big_photo)
    expect(page.locator("#preview-caption")).to_contain_text("sent as a JPEG of at most 2048 px")
    with page.expect_response("**/api/search") as response:
        page.click("#search-btn")
    assert response.value.ok, response.value.text()  # the original would be refused with 413
    expect(page.locator(".result-card")).to_have_count(5)
    name, image, size = uploaded_image(bodies[0])
    assert name == "IMG_4000.jpg" and image.format == "JPEG" and image.size == (2048, 1536)
    assert size < UPLOAD_LIMIT_MB * 2**20

    # A crop of it: the selected region only, at most 2048 px long, its shape kept.
    box = page.locator("#preview-img").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.9, steps=5)
    page.mouse.up()
    expect(page.locator("#crop-box")).to_be_visible()
    with page.expect_response("**/api/search") as response:
        page.click("#search-btn")
    assert response.value.ok, response.value.text()
    name, image, size = uploaded_image(bodies[1])
    assert name == "crop-of-IMG_4000.jpg" and max(image.size) <= 2048 and size < UPLOAD_LIMIT_MB * 2**20
    assert image.size[0] / image.size[1] == pytest.approx((0.4 * 8000) / (0.7 * 6000), rel=0.05)


def open_map(on: Page) -> None:
    on.click("#tab-map")
    expect(on.locator("#map-plot .plot-container")).to_be_visible(timeout=60_000)
    expect(on.locator("#map-status")).to_be_hidden()


def test_the_first_map_computation_shows_its_progress(browser: Browser, server_settings: Settings,  # noqa: F811
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A server of its own, with no map computed yet, whose t-SNE pauses a third of the way (it runs in this
    process), so the page's progress bar can be seen."""
    release = threading.Event()
    real = embedding_map._tsne

    def paused(vectors, seed, progress):
        progress(0.35, "t-SNE, iteration 125 of 500")
        release.wait(60)
        return real(vectors, seed, progress)

    monkeypatch.setattr(embedding_map, "_tsne", paused)
    (server_settings.index_dir / "embedding-map.json").unlink(missing_ok=True)
    with running(create_app(server_settings)) as url:
        page, errors = open_dashboard(browser, url)
        try:
            page.click("#tab-map")
            bar = page.locator("#map-progress")
            expect(bar).to_be_visible()
            expect(page.locator("#map-progress-text")).to_contain_text("35% · t-SNE, iteration 125 of 500 · about")
            assert bar.evaluate("b => b.value") == pytest.approx(0.35)
            expect(page.locator("#map-status-text")).to_contain_text("Computing the map")
            shot(page, "usability-03-map-progress", full_page=False)
        finally:
            release.set()
        open_map(page)
        expect(bar).to_be_hidden()
        page.context.close()
    assert not errors


def test_the_map_by_keyboard_arrow_keys_and_the_list_of_last_results(page: Page, queries) -> None:  # noqa: F811
    choose_files(page, queries["circles"])
    page.select_option("#k", "3")
    with page.expect_response("**/api/search"):
        page.click("#search-btn")
    found = cards(page)
    assert len(found) == 3
    open_map(page)
    details, caption = page.locator("#map-details"), page.locator("#map-details-caption")
    # The last results, as a list of buttons: focusing one shows it below the map, Enter opens it.
    listed = page.locator("#map-results-list .map-result")
    expect(listed).to_have_count(3)
    listed.first.focus()
    expect(details).to_be_visible()
    expect(caption).to_have_text(f"Item {found[0]['id']} · {found[0]['category']} · #1 of the last results")
    shot(page, "usability-04-map-keyboard", full_page=False)
    with page.expect_response(f"**/api/items/{found[0]['id']}/similar*"):
        page.keyboard.press("Enter")
    expect(page.locator("#panel-search")).to_be_visible()

    # Arrow keys on the focused map move from point to point; Enter opens the chosen one.
    open_map(page)
    page.locator("#map-plot").focus()
    seen = set()
    for key in ["ArrowRight", "ArrowRight", "ArrowDown", "ArrowLeft", "ArrowUp", "ArrowRight"]:
        page.keyboard.press(key)
        expect(details).to_be_visible()
        seen.add(caption.inner_text())
    assert len(seen) >= 3, seen
    described = re.compile(r"Item \d+ · (checks|circles|stripes|scarves)( · #\d of the last results)?")
    assert all(described.fullmatch(c) for c in seen), seen
    chosen = details.get_attribute("data-id")
    ring = page.evaluate("() => { const p = document.getElementById('map-plot'); const t = p.data.at(-1);"
                         " return [t.name, t.customdata]; }")
    assert ring == ["chosen", [[int(chosen or 0), ring[1][0][1]]]]
    with page.expect_response(f"**/api/items/{chosen}/similar*"):
        page.keyboard.press("Enter")
    expect(page.locator("#results-title")).to_contain_text(f"More like item {chosen}")


def test_a_tap_on_a_map_point_shows_it_then_more_like_this_opens_it(phone: Page) -> None:
    open_map(phone)
    point = phone.locator("#map-plot .scatterlayer .trace").first.locator(".point").nth(1).bounding_box()
    assert point is not None
    phone.touchscreen.tap(point["x"] + point["width"] / 2, point["y"] + point["height"] / 2)
    details = phone.locator("#map-details")
    expect(details).to_be_visible()
    expect(phone.locator("#map-details-caption")).to_contain_text(re.compile(r"Item \d+ · \w+"))
    expect(phone.locator("#panel-map")).to_be_visible()  # shown, not opened yet
    expect(phone.locator("#map-hover")).to_be_hidden()
    shot(phone, "usability-05-phone-map-tap", full_page=False)
    item = details.get_attribute("data-id")
    with phone.expect_response(f"**/api/items/{item}/similar*"):
        phone.locator("#map-details-open").tap()
    expect(phone.locator("#results-title")).to_contain_text(f"More like item {item}")
