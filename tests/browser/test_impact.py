"""The impact page on the real stack: a zone's bike trips, attested by a city dock and sent by enough devices to
be shown (k-anonymity), reach the page's figures and its CSV; the CITY the simulated fleet earned shows as paid.

The simulated fleet spreads its few devices over zones and kinds, so none of its zone minutes has the k devices
a statistic is shown over: the test sends its own trips, as citizens' devices with a dock's receipts would.
"""

from __future__ import annotations

import asyncio
import csv
import random
import uuid
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Page, expect

from bench._running import RunningPlatform
from services.common.roles import operator_key
from services.common.signing import Keypair
from services.simulator.fleet import CityDevice, Device, Fleet
from services.simulator.run import register
from tests.browser.conftest import screenshot
from tests.support.waiting import until

pytestmark = pytest.mark.e2e

WAIT_MS = 20_000
TRIPS = 6
"""Devices, one trip each, in one minute of one zone: more than the policy's k (5)."""
CSV_NUMBERS = ("kg_co2e_avoided", "kwh_saved", "kg_recycled", "km_cycled", "km_walked")
CSV_COUNTS = ("bike_trips", "walk_trips", "transit_trips", "readings")
T = TypeVar("T")


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` to its end on a thread of its own: Playwright's sync API holds this thread's event loop."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, work).result()


def bike_fleet(platform: RunningPlatform, zone: str) -> Fleet:
    """Six citizens' bike-trip devices of two wallets in `zone`, and the dock (a city device the platform's
    operator registers) whose receipts attest their trips."""
    wallets = [Keypair.generate() for _ in range(2)]
    dock = CityDevice(Keypair.generate(), operator_key(platform.data_dir), "bike_dock", "bike_trip", zone)
    devices = [
        Device(Keypair.generate(), wallets[i % 2], "bike_trip", zone, rng=random.Random(i), attester=dock)
        for i in range(TRIPS)
    ]
    return Fleet(wallets, devices, [dock])


async def send_trips(platform: RunningPlatform, fleet: Fleet) -> float:
    """Grant the city consent, register the devices and send one attested trip from each, dated in a minute that
    is over already (so its window is published at once); the km sent."""
    now = datetime.now(UTC)
    async with httpx.AsyncClient(base_url=platform.url("identity"), timeout=10) as identity:
        # Signed a few minutes ago (within identity's clock skew): the consent in force at the trips' time.
        for grant in fleet.consent_grants(now - timedelta(minutes=4)):
            assert (await identity.post("/v1/consents", json=grant)).status_code == 201
    async with httpx.AsyncClient(base_url=platform.url("ingest"), timeout=10) as ingest:
        await register(ingest, fleet)
        readings = [device.next_reading(now - timedelta(seconds=90)) for device in fleet.devices]
        km = sum(reading["values"]["km"] for reading in readings)

        async def accepted() -> bool:
            # Ingest learns of the consents within seconds; until then it refuses with no_consent.
            answer = await ingest.post("/v1/readings", json={"readings": readings})
            if answer.status_code == 503:  # its consent view is catching up: nothing was accepted
                return False
            results = answer.json()["results"]
            assert all(r["status"] == "accepted" or r["reason"].startswith("no_consent") for r in results), (
                results
            )
            readings[:] = [readings[r["index"]] for r in results if r["status"] != "accepted"]
            return not readings

        await until(accepted, "ingest to accept the trips")
    return km


async def figures_shown(platform: RunningPlatform, zone: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The portal's zone figures once the zone's trips and a policy are in, and the ledger's circulation once
    rewards are sealed."""
    async with httpx.AsyncClient(timeout=10) as client:

        async def zone_row() -> dict[str, Any] | None:
            answer = (await client.get(f"{platform.url('portal')}/v1/impact/zones")).json()
            rows = [row for row in answer["zones"] if row["zone"] == zone]
            return answer if rows and rows[0]["bike_trips"] == TRIPS and answer["policy"] else None

        async def paid() -> dict[str, Any] | None:
            answer = (await client.get(f"{platform.url('portal')}/api/ledger/v1/circulation")).json()
            return answer if answer["months"][-1]["paid"] > 0 else None

        return await until(zone_row, "the zone's trips on the portal", 60), await until(paid, "CITY paid", 60)


def test_the_impact_page_shows_a_zones_trips_and_the_city_paid_and_downloads_them_as_csv(
    platform: RunningPlatform, page: Page
) -> None:
    zone = f"impact-{uuid.uuid4().hex[:8]}"
    fleet = bike_fleet(platform, zone)
    km = run_async(send_trips(platform, fleet))
    impact, circulation = run_async(figures_shown(platform, zone))
    row = next(r for r in impact["zones"] if r["zone"] == zone)
    factor = next(f for f in impact["policy"]["factors"] if (f["kind"], f["value"]) == ("bike_trip", "km"))
    assert row["km_cycled"] == pytest.approx(km, abs=1e-3)
    assert row["kg_co2e_avoided"] == pytest.approx(km * factor["kg_co2e_per_unit"], abs=1e-3)

    page.goto(f"{platform.url('portal')}/impact.html")
    expect(page.locator("#impact-status")).to_contain_text("Figures of", timeout=WAIT_MS)
    expect(page.locator("#impact-status")).to_have_class("status good")
    zone_row = page.locator("#zones-table tbody tr", has_text=zone)
    expect(zone_row).to_contain_text(str(TRIPS))
    expect(page.locator("#figures")).to_contain_text("CITY paid in rewards")
    paid_card = page.locator(".figure", has_text="CITY paid in rewards").locator(".value")
    expect(paid_card).not_to_have_text("0 CITY")
    expect(page.locator("#co2e-chart svg rect").first).to_be_attached()
    expect(page.locator("#city-chart svg rect").first).to_be_attached()
    expect(page.locator("#months-table tbody tr")).to_have_count(12)
    expect(page.locator("#policy-used")).to_contain_text(impact["policy"]["version"])
    screenshot(page, "impact")

    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    assert download.value.suggested_filename.endswith(".csv")
    with open(download.value.path(), newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    ours = next(r for r in rows if r["zone"] == zone)
    assert ours["month"] == row["month"]
    for column in CSV_COUNTS:
        assert int(ours[column]) == row[column], column
    for column in CSV_NUMBERS:
        assert float(ours[column]) == pytest.approx(row[column]), column
    assert circulation["months"][-1]["paid"] > 0
