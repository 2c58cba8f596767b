"""The directory page: a search finds a locally owned, city-verified bakery and a chain's branch with the same
name words; the local one ranks first even though the chain is a little nearer, and each result says why
(its score parts); the chain's result offers local alternatives."""

from __future__ import annotations

import random
import string

import httpx
import pytest
from playwright.sync_api import Page, expect

from bench._running import RunningPlatform
from services.common.signing import Keypair
from tests.browser.conftest import CityKeys, screenshot
from tests.support.factories import merchant_registration, merchant_verification

pytestmark = pytest.mark.e2e

WAIT_MS = 20_000
HERE = (52.3702, 4.8952)  # where the person searches from


def register(platform: RunningPlatform, city: CityKeys, word: str) -> tuple[Keypair, Keypair, str]:
    """A locally owned bakery the city verified, 300 m away, and a chain's bakery 250 m away, both named with
    `word`: their wallets and the chain's brand."""
    local, chain = Keypair.generate(), Keypair.generate()
    brand = f"{word.capitalize()}Bake Co"
    lat, lon = HERE
    local_registration = merchant_registration(
        local,
        name=f"{word.capitalize()} Family Bakery",
        category="food",
        locally_owned=True,
        accepts=["CITY", "AID"],
        lat=lat + 0.0027,  # ~300 m north
        lon=lon,
        address="12 Canal Street",
        description="Sourdough baked on site since 1987.",
    )
    chain_registration = merchant_registration(
        chain,
        name=f"{word.capitalize()} Bakery Express",
        category="food",
        locally_owned=False,
        chain=brand,
        accepts=["CITY", "CREDIT"],
        lat=lat + 0.00225,  # ~250 m north
        lon=lon,
        address="1 Station Square",
    )
    with httpx.Client(base_url=platform.url("directory"), timeout=15) as http:
        for registration in (local_registration, chain_registration):
            answer = http.post("/v1/merchants", json=registration)
            assert answer.status_code == 201, answer.text
        verification = merchant_verification(city.verifier, local_registration)
        answer = http.post(f"/v1/merchants/{local.did}/verification", json=verification)
        assert answer.status_code == 200 and answer.json()["verified"], answer.text
    return local, chain, brand


def test_a_search_ranks_the_verified_local_business_first_and_says_why(
    platform: RunningPlatform, city: CityKeys, page: Page
) -> None:
    word = "".join(random.choices(string.ascii_lowercase, k=9))  # a name no other test's merchant has
    local, chain, brand = register(platform, city, word)

    page.goto(f"{platform.url('portal')}/directory.html")
    category = page.get_by_label("Category", exact=True)
    expect(category.locator("option[value=food]")).to_have_count(1, timeout=WAIT_MS)
    page.get_by_label("What are you looking for?").fill(word)
    category.select_option("food")
    page.get_by_label("Latitude").fill(str(HERE[0]))
    page.get_by_label("Longitude").fill(str(HERE[1]))
    page.get_by_role("button", name="Search", exact=True).click()

    status = page.locator("#search-status")
    expect(status).to_contain_text(f"2 results for “{word}”, local businesses first", timeout=WAIT_MS)
    results = page.locator("#results > li")
    expect(results).to_have_count(2)
    first, second = results.nth(0), results.nth(1)
    expect(first).to_have_attribute("data-wallet", local.did)
    expect(second).to_have_attribute("data-wallet", chain.did)

    # The local one: verified, how far, and why it ranks first (its score parts, the full local bonus).
    expect(first.locator("h3")).to_have_text(f"{word.capitalize()} Family Bakery")
    expect(first).to_contain_text("Locally owned · verified by the city")
    expect(first).to_contain_text("300 m away")
    expect(first).to_contain_text("+ local 0.25.")
    expect(first).to_contain_text("full local bonus: locally owned, and the city verified it")
    expect(first).to_contain_text("Its name matches every word you typed")
    # The chain: nearer, but no local bonus.
    expect(second).to_contain_text(f"Chain: {brand}")
    expect(second).to_contain_text("250 m away")
    expect(second).to_contain_text("+ local 0.00.")
    expect(second).to_contain_text("no local bonus: it is a chain")
    # The ranking explained, with the weights the directory answered with.
    ranking = page.locator("section", has=page.get_by_role("heading", name="How results are ranked"))
    expect(ranking).to_contain_text("0.25 for a locally owned business the city verified")
    expect(ranking).to_contain_text("chains are never hidden")

    # The chain's result offers the local alternatives: the verified local bakery among them.
    page.get_by_role("button", name=f"Local alternatives to {brand}").click()
    alternatives = second.locator(".alternatives")
    expect(alternatives).to_contain_text("locally owned", timeout=WAIT_MS)
    expect(alternatives.locator(f'li[data-wallet="{local.did}"]')).to_be_visible()
    expect(alternatives.locator(f'li[data-wallet="{chain.did}"]')).to_have_count(0)
    expect(page.get_by_role("button", name=f"Local alternatives to {brand}")).to_have_attribute(
        "aria-expanded", "true"
    )
    screenshot(page, "directory")

    # The same from the page's own form, by the chain's brand; a name the directory cannot place is said so.
    page.get_by_label("A chain, a category or a product").fill(brand)
    page.get_by_role("button", name="Find local alternatives").click()
    found = page.locator("#alternatives")
    expect(found.locator(f'li[data-wallet="{local.did}"]')).to_be_visible(timeout=WAIT_MS)
    expect(found.locator(f'li[data-wallet="{chain.did}"]')).to_have_count(0)
    page.get_by_label("A chain, a category or a product").fill(f"{word}zzz")
    page.get_by_role("button", name="Find local alternatives").click()
    expect(page.locator("#alternatives-status")).to_contain_text(
        f"The directory knows no chain, category or product called “{word}zzz”", timeout=WAIT_MS
    )
