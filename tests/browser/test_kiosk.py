"""The kiosk: a person without a phone opens the wallet the city keeps for them with their did and PIN, sees
a wrong PIN counted, their balances (AID held by their AID holder key), pays a neighbour, reads a notice, and
the page forgets everything when the session ends: on "End session", after the idle time, or when the page is
left, with nothing in any browser storage and nothing shown again on Back."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Request, Route, expect

from bench._running import RunningPlatform
from services.common import events
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair
from tests.browser.conftest import CityKeys, screenshot
from tests.support.issuer import issue

pytestmark = pytest.mark.e2e

WAIT_MS = 20_000
PIN, WRONG_PIN = "2468", "1357"
CITY_MINTED = 25_000_000  # 25 CITY
AID_GRANTED = 5_000_000  # 5 AID
NOTICE_TITLE = "Warm meals tonight"

STORAGE = """async () => ({
    local: localStorage.length,
    session: sessionStorage.length,
    databases: (await indexedDB.databases()).length,
    cookie: document.cookie,
    fields: [...document.querySelectorAll("input, textarea")].map((field) => field.value).filter(Boolean),
})"""


def ok(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in (statuses or (200, 201)), response.text
    return response.json()


def enrol(platform: RunningPlatform, city: CityKeys) -> tuple[str, str]:
    """A person enrolled by the caseworker into a custodial wallet with `PIN`: their did and AID holder key."""
    identity = platform.url("identity")
    enrolment = city.caseworker.sign(
        {"caseworker": city.caseworker.did, "action": "enrol", "issued_at": events.now_rfc3339()}
    )
    with httpx.Client(base_url=identity, timeout=15) as http:
        person = ok(http.post("/v1/custodial-wallets", json={"enrolment": enrolment, "pin": PIN}))["did"]
        holder = ok(http.post(f"/v1/custodial-wallets/{person}/aid-holder", json={"pin": PIN}))["aid_holder"]
    return person, holder


def balances(platform: RunningPlatform, holder: Keypair) -> dict[str, int]:
    with httpx.Client(base_url=platform.url("ledger"), timeout=15) as http:
        return ok(http.get(f"/v1/accounts/{holder.did}", auth=SignedReadAuth(holder)))["balances"]


def post_notice(platform: RunningPlatform, city: CityKeys) -> None:
    expires = (datetime.now(UTC) + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    notice = city.notices.sign(
        {
            "sender": city.notices.did,
            "group": {"custody": "custodial"},
            "title": NOTICE_TITLE,
            "body": "Free warm meals from 18:00 at the Harbour Street community kitchen.",
            "expires_at": expires,
            "issued_at": events.now_rfc3339(),
        }
    )
    with httpx.Client(base_url=platform.url("identity"), timeout=15) as http:
        ok(http.post("/v1/notices", json=notice), 200, 201)


def open_session(page: Page, did: str, pin: str) -> None:
    page.get_by_label("Your wallet id").fill(did)
    page.get_by_label("PIN").fill(pin)
    page.get_by_role("button", name="Open my wallet").click()


def figure(page: Page, currency: str):
    return page.locator(f'#balances [data-currency="{currency}"] .value')


def assert_forgotten(page: Page, *secrets: str) -> None:
    """Nothing of the session on the page (text, fields, URL) nor in any of the browser's storage."""
    expect(page.locator("#session")).to_be_hidden()
    expect(page.locator("#session-bar")).to_be_hidden()
    expect(page.locator("#open")).to_be_visible()
    html = page.content()
    for secret in secrets:
        assert secret not in html, f"{secret!r} still in the page"
        assert secret not in page.url
    stored = page.evaluate(STORAGE)
    assert stored == {"local": 0, "session": 0, "databases": 0, "cookie": "", "fields": []}, stored


def test_a_person_opens_their_wallet_with_a_pin_pays_reads_notices_and_the_kiosk_forgets_them(
    platform: RunningPlatform, city: CityKeys, page: Page
) -> None:
    person, holder = enrol(platform, city)
    neighbour = Keypair.generate()
    expires = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    issue(
        platform,
        city.issuer,
        {"command": "mint", "to": person, "currency": "CITY", "amount": CITY_MINTED},
        {"command": "fund", "pool": "aid", "currency": "AID", "amount": AID_GRANTED},
        {
            "command": "grant",
            "holder": holder,
            "amount": AID_GRANTED,
            "categories": ["grocery"],
            "expires_at": expires,
        },
    )
    kiosk = f"{platform.url('portal')}/kiosk.html"
    answer = page.goto(kiosk)
    assert answer is not None and answer.headers["cache-control"] == "no-store"

    # A wrong PIN is counted, and says how many tries are left; nothing opens.
    open_session(page, person, WRONG_PIN)
    status = page.locator("#kiosk-status")
    expect(status).to_contain_text("Wrong PIN", timeout=WAIT_MS)
    expect(status).to_contain_text("4 more tries")
    expect(page.locator("#session")).to_be_hidden()
    expect(page.get_by_label("PIN")).to_have_value("")

    # The right PIN opens it: CITY in the wallet, AID held by the AID holder key, both in one statement.
    page.get_by_label("PIN").fill(PIN)
    page.get_by_role("button", name="Open my wallet").click()
    expect(figure(page, "CITY")).to_have_text("25 CITY", timeout=WAIT_MS)
    expect(figure(page, "AID")).to_have_text("5 AID")
    expect(page.locator("#aid-holder")).to_have_text(holder)
    expect(page.locator("#session-did")).to_have_text(person)
    expect(page.get_by_role("button", name="End session")).to_be_visible()
    expect(page.get_by_label("Your wallet id")).to_have_value("")
    expect(page.get_by_label("PIN")).to_have_value("")

    # A payment to a neighbour: the balance drops and the payment is listed, to them.
    transfers: list[dict[str, Any]] = []

    def note(request: Request) -> None:
        if request.url.endswith("/transfers"):
            transfers.append(json.loads(request.post_data or "{}"))

    page.on("request", note)
    page.get_by_label("Pay to").fill(neighbour.did)
    page.get_by_label("Amount").fill("2.5")
    page.get_by_label("Note").fill("for the bread")
    page.get_by_role("button", name="Pay", exact=True).click()
    pay_status = page.locator("#pay-status")
    expect(pay_status).to_contain_text("Paid 2.5 CITY", timeout=WAIT_MS)
    expect(figure(page, "CITY")).to_have_text("22.5 CITY", timeout=WAIT_MS)
    first = page.locator("#transactions tbody tr").first
    expect(first).to_contain_text("\u22122.5 CITY")  # a minus sign, as dom.js formatMicro writes it
    expect(first).to_contain_text("Payment to", timeout=WAIT_MS)
    expect(page.locator("#transactions tbody tr")).to_have_count(3)  # the grant, the mint, the payment
    assert balances(platform, neighbour)["CITY"] == 2_500_000
    assert transfers[0]["memo"] == "for the bread" and transfers[0]["pin"] == PIN

    # The answer to a payment is lost on the way (the payment settles, the page sees a 503): the retry sends
    # the same request_id, and identity answers the same receipt: paid once.
    def lose_answer(route: Route) -> None:
        route.fetch()
        route.fulfill(
            status=503,
            headers={"content-type": "application/problem+json", "retry-after": "1"},
            body=json.dumps({"type": "about:blank", "title": "Unavailable", "status": 503, "detail": "lost"}),
        )

    page.route("**/transfers", lose_answer)
    page.get_by_label("Pay to").fill(neighbour.did)
    page.get_by_label("Amount").fill("1")
    page.get_by_role("button", name="Pay", exact=True).click()
    expect(pay_status).to_contain_text("Press Pay again in 1 second", timeout=WAIT_MS)
    expect(pay_status).to_contain_text("never paid twice")
    page.unroute("**/transfers")
    page.get_by_role("button", name="Pay", exact=True).click()
    expect(pay_status).to_contain_text("Paid 1 CITY", timeout=WAIT_MS)
    expect(figure(page, "CITY")).to_have_text("21.5 CITY", timeout=WAIT_MS)
    assert balances(platform, neighbour)["CITY"] == 3_500_000
    assert transfers[1]["request_id"] == transfers[2]["request_id"]
    assert transfers[0]["request_id"] != transfers[1]["request_id"]

    # The ledger's refusal, in plain words; nothing is paid.
    page.get_by_label("Pay to").fill(neighbour.did)
    page.get_by_label("Amount").fill("1000")
    page.get_by_role("button", name="Pay", exact=True).click()
    expect(pay_status).to_contain_text("not enough money in your wallet", timeout=WAIT_MS)
    expect(pay_status).to_have_class("status bad")
    expect(figure(page, "CITY")).to_have_text("21.5 CITY")

    # A notice to everyone whose wallet the city keeps reaches the kiosk.
    post_notice(platform, city)
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#notices")).to_contain_text(NOTICE_TITLE, timeout=WAIT_MS)
    expect(page.locator("#notices")).to_contain_text("Harbour Street community kitchen")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "kiosk")

    # End session: the did, the PIN, the balances and the notice are gone, from the page and from storage.
    page.get_by_role("button", name="End session").click()
    expect(status).to_contain_text("Session ended")
    secrets = (person, holder, "21.5 CITY", NOTICE_TITLE, neighbour.did)
    assert_forgotten(page, *secrets)
    expect(page.get_by_label("Your wallet id")).to_be_focused()

    # Back after leaving shows none of it.
    page.goto(f"{platform.url('portal')}/index.html")
    page.go_back()
    expect(page.locator("#open")).to_be_visible(timeout=WAIT_MS)
    assert_forgotten(page, *secrets)

    # Leaving the page with a session open (no End session) forgets it too: Back shows the empty kiosk.
    open_session(page, person, PIN)
    expect(figure(page, "CITY")).to_have_text("21.5 CITY", timeout=WAIT_MS)
    page.goto(f"{platform.url('portal')}/index.html")
    page.go_back()
    expect(page.locator("#open")).to_be_visible(timeout=WAIT_MS)
    assert_forgotten(page, *secrets)


def test_an_idle_session_warns_counts_down_and_ends(
    platform: RunningPlatform, city: CityKeys, page: Page
) -> None:
    person, holder = enrol(platform, city)
    page.goto(f"{platform.url('portal')}/kiosk.html")
    # The idle time, shortened for the test: read by the page when a session opens, never stored.
    # Long enough that a loaded browser still answers the warning in time: it shows for the last 5 s.
    page.evaluate("document.body.dataset.idleSeconds = '10'")
    open_session(page, person, PIN)
    expect(figure(page, "CITY")).to_have_text("0 CITY", timeout=WAIT_MS)

    warning = page.locator("#idle-warning")
    expect(warning).to_be_visible(timeout=WAIT_MS)
    expect(warning).to_contain_text("Are you still there?")
    expect(page.locator("#idle-countdown")).to_have_text(re.compile(r"^[1-5]$"))
    # Any input keeps the session open.
    page.get_by_role("button", name="I am still here").click()
    expect(warning).to_be_hidden()
    expect(page.locator("#session")).to_be_visible()

    # Then, left alone, it ends and forgets.
    expect(warning).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#session")).to_be_hidden(timeout=WAIT_MS)
    expect(page.locator("#kiosk-status")).to_contain_text("Session ended after a time without input")
    assert_forgotten(page, person, holder)

    # The screen hidden (another app or tab in front) ends it too. Headless Chromium never hides a page, so
    # the page is told it is hidden as a browser would tell it.
    page.evaluate("document.body.dataset.idleSeconds = '120'")
    open_session(page, person, PIN)
    expect(figure(page, "CITY")).to_have_text("0 CITY", timeout=WAIT_MS)
    page.evaluate(
        """() => {
            Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true });
            document.dispatchEvent(new Event("visibilitychange"));
        }"""
    )
    expect(page.locator("#kiosk-status")).to_contain_text("Session ended when the screen was left")
    assert_forgotten(page, person, holder)


def test_wrong_pins_lock_the_wallet_and_the_kiosk_says_until_when(
    platform: RunningPlatform, city: CityKeys, page: Page
) -> None:
    person, _ = enrol(platform, city)
    page.goto(f"{platform.url('portal')}/kiosk.html")
    status = page.locator("#kiosk-status")
    for left in (4, 3, 2, 1):
        open_session(page, person, WRONG_PIN)
        expect(status).to_contain_text(f"{left} more tr", timeout=WAIT_MS)
    open_session(page, person, WRONG_PIN)
    expect(status).to_contain_text("Too many wrong PINs: this wallet is locked until", timeout=WAIT_MS)
    # Locked, even the right PIN opens nothing until then.
    page.get_by_label("PIN").fill(PIN)
    page.get_by_role("button", name="Open my wallet").click()
    expect(status).to_contain_text("locked until", timeout=WAIT_MS)
    expect(page.locator("#session")).to_be_hidden()
