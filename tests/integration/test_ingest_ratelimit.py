"""The per-device rate limit holds across ingest instances: two instances over one database count a device's
readings in one bucket (its sequence row, locked by each batch), so a device sending through both alternately
is limited at the burst in total, not twice it; a duplicate spends no token; and a batch the broker did not
acknowledge gives its tokens back."""

from __future__ import annotations

import httpx
from prometheus_client import REGISTRY

from services.common import embedded
from services.common.kafka import KafkaProducer
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.common.topics import READINGS
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from tests.support import consents, ingest
from tests.support.asgi import assert_problem, running
from tests.support.topics import end_offsets, readings_published_during

BURST = 4
LIMITS = IngestSettings(device_rate_per_s=0.001, device_burst=BURST)
"""A token back every 1,000 s: none comes back during a test."""


async def _send(client: httpx.AsyncClient, *readings: dict) -> httpx.Response:
    return await client.post("/v1/readings", json={"readings": list(readings)})


def _statuses(response: httpx.Response) -> list[str]:
    assert response.status_code == 202, response.text
    return [r["reason"].split(":")[0] if r["reason"] else r["status"] for r in response.json()["results"]]


async def _published_seqs(bootstrap: str, start: dict[int, int], device: Keypair) -> list[int]:
    """The sequence numbers of `device`'s readings published since `start` (found by their value, whatever
    the records are keyed by)."""
    published = await readings_published_during(bootstrap, start)
    return sorted(p.reading["seq"] for p in published if p.reading["device_id"] == device.did)


async def test_two_instances_limit_a_device_at_the_burst_in_total(platform_settings: PlatformSettings):
    owner, noisy, quiet = Keypair.generate(), Keypair.generate(), Keypair.generate()
    bootstrap = platform_settings.bootstrap_servers
    start = await end_offsets(bootstrap, READINGS)
    apps = [create_app(platform_settings, LIMITS), create_app(platform_settings, LIMITS)]
    async with running(apps[0]) as a, running(apps[1]) as b:
        for device in (noisy, quiet):
            assert (await a.post("/v1/devices", json=ingest.registration(owner, device))).status_code == 201
        await consents.grant(bootstrap, owner, *apps)

        assert _statuses(await _send(a, ingest.reading(noisy, 1))) == ["accepted"]
        # A replay through the other instance is a duplicate, and spends no token.
        assert _statuses(await _send(b, ingest.reading(noisy, 1))) == ["duplicate"]
        # Alternately through both instances: the burst in all, not a burst on each.
        for seq, client in zip(range(2, BURST + 1), (b, a, b), strict=True):
            assert _statuses(await _send(client, ingest.reading(noisy, seq))) == ["accepted"]
        for seq, client in zip(range(BURST + 1, 2 * BURST + 1), (a, b, a, b), strict=True):
            over = await _send(client, ingest.reading(noisy, seq))
            problem = assert_problem(over, 429)
            assert problem["results"] == [{"index": 0, "status": "rejected", "reason": "rate_limited"}]
            # Whichever instance answers, the wait is the shared bucket's: a token every 1,000 s (the first reading was at most minutes ago).
            assert 900 <= int(over.headers["retry-after"]) <= 1000
        # Over its limit, a replay is still named a duplicate: the sequence check comes first.
        assert _statuses(await _send(b, ingest.reading(noisy, 2))) == ["duplicate"]
        # A device beside it has its own bucket.
        mixed = await _send(a, ingest.reading(noisy, 2 * BURST + 1), ingest.reading(quiet, 1))
        assert _statuses(mixed) == ["rate_limited", "accepted"]

    assert await _published_seqs(bootstrap, start, noisy) == list(range(1, BURST + 1))
    assert await _published_seqs(bootstrap, start, quiet) == [1]


async def test_a_batch_the_broker_did_not_acknowledge_spends_no_token(platform_settings: PlatformSettings):
    owner, device = Keypair.generate(), Keypair.generate()
    bootstrap = platform_settings.bootstrap_servers
    batch = [ingest.reading(device, seq) for seq in range(1, BURST + 1)]
    start = await end_offsets(bootstrap, READINGS)
    app = create_app(platform_settings, LIMITS)
    async with running(app) as client:
        assert (await client.post("/v1/devices", json=ingest.registration(owner, device))).status_code == 201
        await consents.grant(bootstrap, owner, app)
        pipeline = app.state.pipeline
        # The consent view still hears from the broker; only the readings' producer cannot reach it.
        reachable = pipeline.producer
        pipeline.producer = KafkaProducer(
            f"127.0.0.1:{embedded.free_port()}", client_id="ingest-unreachable", send_timeout_s=1.0
        )
        failures = REGISTRY.get_sample_value("smartcity_ingest_publish_failures_total") or 0.0
        try:
            assert_problem(await _send(client, *batch), 503)
            # It got as far as publishing, the tokens taken, under the lock.
            assert REGISTRY.get_sample_value("smartcity_ingest_publish_failures_total") == failures + 1
        finally:
            pipeline.producer.close(timeout_s=0)
            pipeline.producer = reachable
        # The whole burst is still there, and the retry is accepted; then the bucket is empty.
        assert _statuses(await _send(client, *batch)) == ["accepted"] * BURST
        assert_problem(await _send(client, ingest.reading(device, BURST + 1)), 429)
    assert await _published_seqs(bootstrap, start, device) == list(range(1, BURST + 1))
