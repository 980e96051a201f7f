"""A server that needs a read key (LOOKALIKE_READ_TOKENS), in a real headless Chromium: the dashboard asks for the
key once, keeps it in a cookie, and then searches and shows the result images (which need the key too)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Dialog, expect
from pydantic import SecretStr
from test_dashboard import DESKTOP, browser, queries, shot, wait_for_images  # noqa: F401  (fixtures)

from lookalike.api.main import create_app
from lookalike.config import Settings

from apiserver import ingested, running

KEY = "shop-reader-7"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, extractor, catalog_dir: Path):
    settings = Settings(home=tmp_path_factory.mktemp("dashboard-key") / "home", models_dir=models_dir, batch_size=8,
                        read_tokens=[SecretStr(KEY)], _env_file=None)  # type: ignore[call-arg]
    with running(create_app(ingested(settings, catalog_dir))) as url:
        yield url


def test_the_dashboard_asks_for_the_key_once_then_searches(browser, keyed_server: str, queries) -> None:  # noqa: F811
    asked: list[str] = []

    def answer(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept(KEY)

    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", answer)
    try:
        page.goto(keyed_server)
        expect(page.locator("#category option")).not_to_have_count(1)  # the categories came, with the key
        assert len(asked) == 1 and "key" in asked[0]
        assert any(c["name"] == "lookalike_key" and c["value"] == KEY for c in context.cookies())
        page.select_option("#k", "3")
        page.set_input_files("#file", str(next(iter(queries.values()))))
        with page.expect_response("**/api/search") as response:
            page.click("#search-btn")
        assert response.value.ok, response.value.text()
        expect(page.locator(".result-card")).to_have_count(3)
        wait_for_images(page, ".result-card img")
        assert len(asked) == 1
        shot(page, "dashboard-read-key")
        assert not errors, errors
    finally:
        context.close()
