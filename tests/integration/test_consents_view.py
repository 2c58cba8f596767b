"""ConsentView on the real broker: every instance follows city.consents.v1 from the beginning, and a revocation
reaches all of them within 5 seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

from services.common import events
from services.common.consents import CITY, ConsentView, check_consent
from services.common.kafka import KafkaProducer, OutgoingRecord
from services.common.signing import Keypair
from services.common.topics import CONSENTS

REVOCATION_BOUND_S = 5.0


def _change(subject: Keypair, action: str, category: str = "mobility", grantee: str = CITY) -> OutgoingRecord:
    change = check_consent(
        subject.sign(
            {
                "subject": subject.did,
                "category": category,
                "grantee": grantee,
                "action": action,
                "purpose": "test",
                "issued_at": events.now_rfc3339(),
            }
        )
    )
    return OutgoingRecord(CONSENTS, change.key, change.record(datetime.now(UTC)))


async def _within(bound_s: float, condition: Callable[[], bool]) -> float:
    """Seconds until `condition` held; fails if it did not hold within `bound_s`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < bound_s, "condition did not hold in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_two_views_see_grant_and_revocation(kafka_bootstrap: str):
    alice, bob = Keypair.generate(), Keypair.generate()
    producer = KafkaProducer(kafka_bootstrap, client_id="test-consents")
    # A grant that exists before the views start: they must read it from the beginning of the topic.
    await producer.send(_change(bob, "grant", category="energy"))
    views = [ConsentView(kafka_bootstrap, client_id=f"test-view-{i}") for i in range(2)]
    try:
        for view in views:
            await asyncio.to_thread(view.start)
        for view in views:
            assert await asyncio.to_thread(view.wait_ready, 30)
            assert view.allows(bob.did, "energy")
            assert not view.allows(alice.did, "mobility")
            assert view.age_s < REVOCATION_BOUND_S

        await producer.send(_change(alice, "grant"))
        for view in views:
            await _within(REVOCATION_BOUND_S, lambda v=view: v.allows(alice.did, "mobility"))
            assert not view.allows(alice.did, "energy")
            assert not view.allows(alice.did, "mobility", grantee=bob.did)

        await producer.send(_change(alice, "revoke"))
        for view in views:
            await _within(REVOCATION_BOUND_S, lambda v=view: not v.allows(alice.did, "mobility"))
            assert view.allows(bob.did, "energy")
    finally:
        for view in views:
            await asyncio.to_thread(view.close)
        await asyncio.to_thread(producer.close)


async def test_view_ignores_records_whose_signed_consent_disagrees(kafka_bootstrap: str):
    alice = Keypair.generate()
    forged = _change(alice, "revoke")
    forged_value = {**forged.value, "status": "granted"}  # says granted, but alice signed a revocation
    producer = KafkaProducer(kafka_bootstrap, client_id="test-consents-forged")
    view = ConsentView(kafka_bootstrap, client_id="test-view-forged")
    try:
        await producer.send(OutgoingRecord(CONSENTS, forged.key, forged_value))
        await producer.send(_change(alice, "grant", category="energy"))
        await asyncio.to_thread(view.start)
        assert await asyncio.to_thread(view.wait_ready, 30)
        assert view.allows(alice.did, "energy")
        assert not view.allows(alice.did, "mobility")
    finally:
        await asyncio.to_thread(view.close)
        await asyncio.to_thread(producer.close)
