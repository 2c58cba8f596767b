"""Every page of the portal passes axe-core's WCAG 2.2 A and AA rules, on a phone and on a desktop screen, in
the state a person first sees it (axe-core as bundled by axe-playwright-python)."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser

from bench._running import RunningPlatform

pytestmark = pytest.mark.e2e

PAGES = ("/", "/explorer.html", "/wallet.html", "/kiosk.html", "/impact.html", "/directory.html")
WCAG_22_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]


@pytest.mark.parametrize("width", [412, 1280])
@pytest.mark.parametrize("path", PAGES)
def test_the_page_has_no_wcag_violation(
    platform: RunningPlatform, browser: Browser, path: str, width: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{platform.url('portal')}{path}")
        page.wait_for_load_state("networkidle")
        options = {"runOnly": {"type": "tag", "values": WCAG_22_AA}, "resultTypes": ["violations"]}
        results = Axe().run(page, options=options)
        assert results.violations_count == 0, results.generate_report()
    finally:
        context.close()
