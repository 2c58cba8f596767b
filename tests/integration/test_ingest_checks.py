"""Every rejection reason of a reading through the ingest API on a real broker and PostgreSQL (no_consent
included), each with its counter in /metrics, the good readings beside them accepted; and the per-device rate
limit (429)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.common.events import rfc3339
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.common.topics import READINGS
from services.ingest.app import create_app
from services.ingest.checks import Reason
from services.ingest.settings import IngestSettings
from tests.support import consents, ingest
from tests.support.asgi import assert_problem, running
from tests.support.topics import end_offsets, readings_published_during

RECEIPT_REASONS = {
    Reason.BAD_RECEIPT_SIGNATURE,
    Reason.RECEIPT_MISMATCH,
    Reason.SELF_ATTESTED,
    Reason.UNKNOWN_ATTESTER,
    Reason.NOT_CITY_DEVICE,
    Reason.REVOKED_ATTESTER,
    Reason.ATTESTER_MISMATCH,
}
"""The reasons of a city device's receipt, each named and counted in tests/integration/test_ingest_receipts.py."""


async def test_each_rejection_reason_is_named_and_counted(platform_settings: PlatformSettings):
    owner, device, revoked, stranger, refuser, unconsented = (Keypair.generate() for _ in range(6))
    settings = IngestSettings(max_reading_bytes=1024, max_ahead_s=60, max_age_s=3600)
    ahead = rfc3339(datetime.now(UTC) + timedelta(hours=2))
    good = [ingest.reading(device, 1), ingest.reading(device, 2)]
    batch = {
        "good 1": good[0],
        Reason.INVALID_READING: {**ingest.reading(device, 3), "seq": "three"},
        Reason.TOO_LARGE: ingest.reading(
            device, 4, values={f"value_{i:02d}_{'x' * 40}": 1.0 for i in range(30)}
        ),
        Reason.CLOCK_SKEW: ingest.reading(device, 5, ts=ahead),
        Reason.UNKNOWN_KIND: ingest.reading(device, 6, kind="weather"),
        Reason.INVALID_VALUES: ingest.reading(device, 7, values={"db_a": -5}),
        Reason.BAD_SIGNATURE: {**ingest.reading(device, 8), "zone": "harbour"},
        Reason.UNKNOWN_DEVICE: ingest.reading(stranger, 1),
        Reason.REVOKED_DEVICE: ingest.reading(revoked, 1),
        Reason.KIND_MISMATCH: ingest.reading(device, 9, kind="air_quality", values={"pm10": 3}),
        Reason.ZONE_MISMATCH: ingest.reading(device, 10, zone="harbour"),
        Reason.NO_CONSENT: ingest.reading(unconsented, 1),  # its owner never granted "environment"
        Reason.DUPLICATE: good[0],
        "good 2": good[1],
    }
    before = {reason: ingest.rejected(reason) for reason in Reason}
    accepted_before = ingest.accepted()
    app = create_app(platform_settings, settings)
    async with running(app) as client:
        for key in (device, revoked):
            assert (await client.post("/v1/devices", json=ingest.registration(owner, key))).status_code == 201
        registered = await client.post("/v1/devices", json=ingest.registration(refuser, unconsented))
        assert registered.status_code == 201
        await consents.grant(platform_settings.bootstrap_servers, owner, app)
        # Another category granted does not stand for the one the reading's kind needs.
        await consents.grant(platform_settings.bootstrap_servers, refuser, app, categories=["mobility"])
        revoke = await client.post(
            f"/v1/devices/{revoked.did}/revocation", json=ingest.revocation(revoked, owner)
        )
        assert revoke.status_code == 200, revoke.text
        start = await end_offsets(platform_settings.bootstrap_servers, READINGS)
        response = await client.post("/v1/readings", json={"readings": list(batch.values())})
        assert response.status_code == 202, response.text
        published = await readings_published_during(platform_settings.bootstrap_servers, start)
        metrics = (await client.get("/metrics")).text

    results = dict(zip(batch, response.json()["results"], strict=True))
    assert results["good 1"]["status"] == results["good 2"]["status"] == "accepted"
    for reason in Reason:
        if reason is Reason.RATE_LIMITED or reason in RECEIPT_REASONS:  # test_ingest_receipts.py's
            continue
        assert results[reason]["status"] == "rejected"
        assert results[reason]["reason"].split(":")[0] == reason.value, (reason, results[reason])
        assert ingest.rejected(reason) - before[reason] == 1, reason
        assert f'smartcity_ingest_readings_rejected_total{{reason="{reason.value}"}}' in metrics
    assert (
        results[Reason.INVALID_VALUES]["reason"]
        == "invalid_values: values/db_a: -5 is less than the minimum of 0"
    )
    assert results[Reason.INVALID_READING]["reason"].startswith("invalid_reading: seq: ")
    assert ingest.accepted() - accepted_before == 2
    mine = [p.reading for p in published if p.reading["device_id"] == device.did]
    assert sorted(mine, key=lambda r: r["seq"]) == good


async def test_a_device_over_its_rate_gets_rejections_then_a_429(platform_settings: PlatformSettings):
    owner, device, other = Keypair.generate(), Keypair.generate(), Keypair.generate()
    settings = IngestSettings(device_rate_per_s=0.01, device_burst=2)
    limited_before = ingest.rejected(Reason.RATE_LIMITED)
    app = create_app(platform_settings, settings)
    async with running(app) as client:
        for key in (device, other):
            assert (await client.post("/v1/devices", json=ingest.registration(owner, key))).status_code == 201
        await consents.grant(platform_settings.bootstrap_servers, owner, app)
        first = await client.post(
            "/v1/readings", json={"readings": [ingest.reading(device, s) for s in (1, 2, 3)]}
        )
        assert first.status_code == 202
        assert [r["reason"] for r in first.json()["results"]] == [None, None, "rate_limited"]

        # The whole request is over the limit: 429, nothing accepted, and when to come back.
        over = await client.post("/v1/readings", json={"readings": [ingest.reading(device, 3)]})
        problem = assert_problem(over, 429)
        assert int(over.headers["retry-after"]) >= 1
        assert problem["results"] == [{"index": 0, "status": "rejected", "reason": "rate_limited"}]

        # Another device's bucket is its own.
        mixed = await client.post(
            "/v1/readings", json={"readings": [ingest.reading(device, 4), ingest.reading(other, 1)]}
        )
        assert mixed.status_code == 202
        assert [r["reason"] for r in mixed.json()["results"]] == ["rate_limited", None]
    assert ingest.rejected(Reason.RATE_LIMITED) - limited_before == 3
