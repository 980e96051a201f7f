"""The OpenAPI docs page renders Swagger UI in a real Chromium with every request beyond 127.0.0.1 blocked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Route, expect, sync_playwright
from test_dashboard import CHROMIUM_ARGS, SCREENSHOTS, chromium_path

from lookalike.api.main import create_app
from lookalike.config import Settings

from apiserver import ingested, running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, catalog_dir: Path) -> Iterator[str]:
    settings = Settings(home=tmp_path_factory.mktemp("docs") / "home", models_dir=models_dir, batch_size=8,
                        decode_workers=2, _env_file=None)  # type: ignore[call-arg]
    with running(create_app(ingested(settings, catalog_dir))) as url:
        yield url


def test_swagger_ui_renders_without_internet(server):
    blocked: list[str] = []

    def only_local(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.route("**/*", only_local)
        page.goto(f"{server}/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("Lookalike")
        operation = page.locator(".opblock-summary-path", has_text="/api/search").first
        expect(operation).to_be_visible()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "docs-offline.png"))
        browser.close()
    assert not errors, errors
    assert not blocked, blocked  # nothing was even asked of the internet
