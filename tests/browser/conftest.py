"""Browser tests: the portal's pages in a real headless Chromium (Debian's `chromium`, driven by Playwright from
PyPI with the system browser's executable), on one `smartcity up` with a small simulated fleet.

The fixtures are package-scoped, not session-scoped: Playwright's sync API holds an event loop of its own while
it runs, so it must be closed before the asyncio tests of the other packages run.

`scripts/ensure-test-tools.sh` (run by `make test`) installs the browser when it is missing. Each test leaves a
screenshot of its page in ``docs/screenshots/``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from nacl import pwhash
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from bench._running import RunningPlatform, fresh_platform
from services.common.signing import Keypair

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


class CityKeys:
    """The keys of the city's roles the tests act as (the platform is started trusting them)."""

    def __init__(self) -> None:
        self.caseworker = Keypair.generate()
        self.issuer = Keypair.generate()  # the ledger's issuer: mints and AID grants
        self.verifier = Keypair.generate()  # verifies merchants in the directory
        self.notices = Keypair.generate()


@pytest.fixture(scope="package")
def city() -> CityKeys:
    return CityKeys()


@pytest.fixture(scope="package")
def platform(city: CityKeys) -> Iterator[RunningPlatform]:
    env = {
        "SIMULATOR_DEVICES": "40",
        "SIMULATOR_READINGS_PER_SECOND": "60",
        "IDENTITY_CASEWORKERS": json.dumps([city.caseworker.did]),
        "IDENTITY_NOTICE_SENDERS": json.dumps([city.notices.did]),
        "IDENTITY_PIN_OPSLIMIT": str(pwhash.argon2id.OPSLIMIT_MIN),
        "IDENTITY_PIN_MEMLIMIT": str(pwhash.argon2id.MEMLIMIT_MIN),
        "LEDGER_ISSUER_KEYS": city.issuer.did,
        "DIRECTORY_VERIFIER_KEYS": json.dumps([city.verifier.did]),
    }
    with fresh_platform(env=env, prefix="smartcity-browser-") as running:
        yield running


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is missing: `make test` installs it (scripts/ensure-test-tools.sh)"
    browser = playwright.chromium.launch(executable_path=executable, headless=True)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no storage shared between tests) at a phone-sized window."""
    context = browser.new_context(viewport={"width": 412, "height": 915})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"the page raised: {errors}"


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
