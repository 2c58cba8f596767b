"""The portal's zone figures on the real broker: windows published to ``city.zone-stats.v1`` as the rewards
worker publishes them are folded into ``GET /v1/impact/zones``, a window published again counts once, and a
restarted portal folds the topic again to the same figures."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from services.common.embedded import free_port
from services.common.events import cloudevent_headers
from services.common.kafka import KafkaProducer, OutgoingRecord
from services.common.months import month_of
from services.common.settings import PlatformSettings
from services.common.topics import ZONE_STATS
from services.portal.app import create_app
from services.portal.settings import PortalSettings
from services.rewards.engine import ZoneWindow
from tests.support.asgi import assert_problem, running
from tests.support.waiting import until

pytestmark = pytest.mark.integration


def bike_window(zone: str, start: int, km: list[float]) -> dict[str, Any]:
    """The window the rewards worker publishes for these trips, one device each."""
    built = ZoneWindow(zone, "bike_trip", start)
    for i, value in enumerate(km):
        built.add({"km": value}, 0.0, f"device-{i}")
    return built.summary()


async def publish(bootstrap: str, windows: list[dict[str, Any]]) -> None:
    records = [
        OutgoingRecord(ZONE_STATS, w["zone"], w, cloudevent_headers("city.zone-stats.v1", "tests", w["zone"]))
        for w in windows
    ]
    producer = KafkaProducer(bootstrap, "impact-test")
    try:
        assert await producer.send_batch(records) == [None] * len(records)
    finally:
        producer.close()


async def test_zone_windows_are_folded_once_and_again_after_a_restart(
    platform_settings: PlatformSettings, kafka_bootstrap: str
) -> None:
    # The topic is shared by the session's tests: this test's zone is its own.
    zone = f"impact-{uuid.uuid4().hex[:12]}"
    start = int(time.time()) // 60 * 60 - 600
    first = bike_window(zone, start, [1.0, 2.0, 3.0, 4.0, 5.0])
    windows = [
        first,
        bike_window(zone, start + 60, [2.0, 2.0, 2.0]),  # three devices: suppressed
        bike_window(zone, start, [1.0, 2.0, 3.0, 4.0, 5.0, 9.0]),  # the first, published again with more
        bike_window(zone, start + 120, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
    ]
    assert windows[1]["suppressed"] is True
    await publish(kafka_bootstrap, windows)
    # No rewards service or ledger answers here (not the default ports, where a developer's platform may run).
    nobody = f"http://127.0.0.1:{free_port()}"
    settings = PortalSettings(impact_policy_refresh_s=0.5, rewards_url=nobody, ledger_url=nobody)

    async def ours(client: Any) -> dict[str, Any] | None:
        answer = (await client.get("/v1/impact/zones", params={"months": 2})).json()
        rows = [row for row in answer["zones"] if row["zone"] == zone]
        return rows[0] if answer["caught_up"] and rows else None

    for _ in ("first start", "restart"):
        async with running(create_app(settings, platform_settings)) as client:
            row = await until(lambda client=client: ours(client), "the zone's windows to be folded")
            assert row == {
                "zone": zone,
                "month": month_of(datetime.fromtimestamp(start, UTC)),
                "kg_co2e_avoided": None,  # no policy in force is known
                "kwh_saved": 0.0,
                "kg_recycled": 0.0,
                "km_cycled": 21.0,
                "km_walked": 0.0,
                "bike_trips": 11,
                "walk_trips": 0,
                "transit_trips": 0,
                "readings": 11,
            }
            answer = (await client.get("/v1/impact/zones", params={"months": 2})).json()
            assert answer["policy"] is None and answer["k_anonymity"] == 5
            assert answer["windows"]["duplicate"] >= 1 and answer["windows"]["suppressed"] >= 1
            for months in (0, 25):
                assert_problem(await client.get("/v1/impact/zones", params={"months": months}), 422)
