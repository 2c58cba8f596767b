"""Nothing lost, nothing twice: per-device sequence numbers in PostgreSQL refuse replays and retried
duplicates across restarts and across several ingest instances, and a batch the broker did not acknowledge
advances nothing, so its retry is accepted."""

from __future__ import annotations

import asyncio

from services.common import embedded
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.common.topics import READINGS
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from tests.support import consents, ingest
from tests.support.asgi import assert_problem, running
from tests.support.topics import end_offsets, readings_published_during


def _statuses(response) -> list[str]:
    assert response.status_code == 202, response.text
    return [r["reason"].split(":")[0] if r["reason"] else r["status"] for r in response.json()["results"]]


async def _published_seqs(bootstrap: str, start: dict[int, int], device: Keypair) -> list[int]:
    published = await readings_published_during(bootstrap, start)
    return sorted(p.reading["seq"] for p in published if p.reading["device_id"] == device.did)


async def test_a_retried_batch_gets_duplicate_across_restarts_and_instances(
    platform_settings: PlatformSettings,
):
    owner, device = Keypair.generate(), Keypair.generate()
    bootstrap = platform_settings.bootstrap_servers
    batch = {"readings": [ingest.reading(device, seq) for seq in (1, 2, 3)]}
    start = await end_offsets(bootstrap, READINGS)
    first_app = create_app(platform_settings)
    async with running(first_app) as first:
        assert (await first.post("/v1/devices", json=ingest.registration(owner, device))).status_code == 201
        await consents.grant(bootstrap, owner, first_app)
        assert _statuses(await first.post("/v1/readings", json=batch)) == ["accepted"] * 3
        # The client's retry after a timeout: what went through is a duplicate, not a second copy.
        assert _statuses(await first.post("/v1/readings", json=batch)) == ["duplicate"] * 3
        async with running(create_app(platform_settings)) as second:  # another instance, same database
            assert _statuses(await second.post("/v1/readings", json=batch)) == ["duplicate"] * 3
            overlapping = {"readings": [ingest.reading(device, seq) for seq in (3, 4)]}
            assert _statuses(await second.post("/v1/readings", json=overlapping)) == ["duplicate", "accepted"]
        assert _statuses(await first.post("/v1/readings", json=overlapping)) == ["duplicate"] * 2
    async with running(create_app(platform_settings)) as restarted:
        replay = {
            "readings": [ingest.reading(device, 4), ingest.reading(device, 2), ingest.reading(device, 5)]
        }
        assert _statuses(await restarted.post("/v1/readings", json=replay)) == [
            "duplicate",
            "duplicate",
            "accepted",
        ]
    assert await _published_seqs(bootstrap, start, device) == [1, 2, 3, 4, 5]


async def test_concurrent_copies_on_two_instances_publish_once(platform_settings: PlatformSettings):
    owner, devices = Keypair.generate(), [Keypair.generate() for _ in range(20)]
    bootstrap = platform_settings.bootstrap_servers
    batch = {"readings": [ingest.reading(device, seq) for device in devices for seq in (1, 2)]}
    start = await end_offsets(bootstrap, READINGS)
    apps = [create_app(platform_settings), create_app(platform_settings)]
    async with running(apps[0]) as a, running(apps[1]) as b:
        await consents.grant(bootstrap, owner, *apps)
        for device in devices:
            assert (await a.post("/v1/devices", json=ingest.registration(owner, device))).status_code == 201
        answers = await asyncio.gather(*(client.post("/v1/readings", json=batch) for client in (a, b, a, b)))
    per_reading = list(zip(*(_statuses(answer) for answer in answers), strict=True))
    # Each reading was accepted by exactly one of the four requests; the others call it a duplicate.
    assert all(
        sorted(statuses) == ["accepted", "duplicate", "duplicate", "duplicate"] for statuses in per_reading
    )
    published = await readings_published_during(bootstrap, start)
    mine = [p for p in published if p.reading["device_id"] in {d.did for d in devices}]
    assert len(mine) == len(batch["readings"])


async def test_503_when_the_broker_is_unreachable_and_the_retry_is_accepted(
    platform_settings: PlatformSettings,
):
    owner, device = Keypair.generate(), Keypair.generate()
    bootstrap = platform_settings.bootstrap_servers
    unreachable = platform_settings.model_copy(
        update={"kafka_bootstrap_servers": f"127.0.0.1:{embedded.free_port()}", "kafka_send_timeout_s": 1.0}
    )
    batch = {"readings": [ingest.reading(device, seq) for seq in (1, 2)]}
    accepted_before = ingest.accepted()
    async with running(create_app(unreachable, IngestSettings(consents_start_timeout_s=1))) as down:
        assert (await down.post("/v1/devices", json=ingest.registration(owner, device))).status_code == 201
        response = await down.post("/v1/readings", json=batch)
        problem = assert_problem(response, 503)
        assert int(response.headers["retry-after"]) > 0 and "results" not in problem
    assert ingest.accepted() == accepted_before
    start = await end_offsets(bootstrap, READINGS)
    up_app = create_app(platform_settings)
    async with running(up_app) as up:  # the same database, the broker back
        await consents.grant(bootstrap, owner, up_app)
        assert _statuses(await up.post("/v1/readings", json=batch)) == ["accepted"] * 2
    assert await _published_seqs(bootstrap, start, device) == [1, 2]
