"""Consent across the pipeline, at the rewards worker (a real process, on the real broker): readings published
straight to city.readings.v1 with a valid ingest attestation are decided on their owner's consent in force at
their own time, from the signed consent records, whatever else was published to city.consents.v1."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Message

from services.common import events
from services.common.topics import CONSENTS, REWARDS
from tests.integration.test_rewards_worker import (
    AMOUNT,
    Publisher,
    consume,
    consume_decisions,
    start_worker,
)
from tests.support import consents
from tests.support.factories import reencoded
from tests.support.topics import rewards_of
from tests.unit.test_rewards_samples import Device

pytestmark = pytest.mark.integration


def test_after_a_revocation_later_readings_earn_nothing_whatever_is_replayed_beside_them(
    kafka_bootstrap: str, tmp_path: Path
):
    now = datetime.now(UTC).replace(microsecond=0)

    def ago(minutes: float) -> str:
        return events.rfc3339(now - timedelta(minutes=minutes))

    device, bystander = Device(kind="air_quality"), Device(kind="air_quality")
    owner = device.owner
    grant = consents.signed_change(owner, "environment", issued_at=ago(60))
    revoke = consents.signed_change(owner, "environment", "revoke", issued_at=ago(20))
    publisher = Publisher(kafka_bootstrap)
    publisher.consent(bystander.owner, "environment")
    for signed in (grant, revoke):
        key, value = consents.record_of(signed)
        publisher.producer.produce(CONSENTS.name, key=key, value=value)
    publisher.flush()

    worker = start_worker(kafka_bootstrap, tmp_path)
    try:
        # The attacks, after the revocation: the old grant published again, the same grant with its signature
        # written another way (refused by every view), and a grant newly signed but dated before the
        # revocation. None of them is in force after the revocation's issued_at.
        key, value = consents.record_of(grant)
        record = json.loads(value)
        reencoded_record = {**record, "consent": reencoded(record["consent"])}
        backdated = consents.signed_change(owner, "environment", issued_at=ago(30))
        publisher.producer.produce(CONSENTS.name, key=key, value=value)
        publisher.producer.produce(CONSENTS.name, key=key, value=json.dumps(reencoded_record).encode())
        key, value = consents.record_of(backdated)
        publisher.producer.produce(CONSENTS.name, key=key, value=value)
        publisher.flush()

        # Readings with a valid ingest attestation, straight to the topic (ingest never saw them): one taken
        # while the grant was in force (sent late: it was buffered), two taken after the revocation, and a
        # reading of another owner beside them.
        readings = {
            "before": device.envelope(1, ts=ago(40)),
            "after": device.envelope(2, ts=ago(19)),
            "latest": device.envelope(3, ts=ago(1)),
            "bystander": bystander.envelope(1, ts=ago(1)),
        }
        publisher.consented.add((owner.did, "environment"))  # no standing grant for this owner
        for label, envelope in readings.items():
            source = bystander if label == "bystander" else device
            publisher.publish_envelope(source, envelope, label)
        publisher.flush()

        decisions = consume_decisions(kafka_bootstrap, {e["reading_id"] for e in readings.values()})
        by_label = {label: decisions[envelope["reading_id"]] for label, envelope in readings.items()}
        for label in ("before", "bystander"):
            decided = by_label[label]
            assert decided["outcome"] == "rewarded", decided
            assert [r["amount"] for r in decided["rewards"]] == [AMOUNT]
            assert (
                decided["consent"]["status"] == "granted" and decided["consent"]["category"] == "environment"
            )
        assert by_label["before"]["consent"]["issued_at"] == ago(60)  # the grant in force then
        for label in ("after", "latest"):
            decided = by_label[label]
            assert decided["outcome"] == "unrewarded" and decided["rewards"] == []
            assert [r["code"] for r in decided["reasons"]] == ["no-consent"], decided
            assert decided["consent"]["status"] == "revoked"
            assert decided["consent"]["issued_at"] == ago(20)
            assert decided["values"] == {} and decided["counted"] is False

        # One reward to the owner (the reading before the revocation), none for the readings after it.
        def keyed(messages: list[Message], wallet: str) -> int:
            return sum(1 for r in rewards_of(messages) if r.reward["wallet"] == wallet)

        rewards = consume(
            kafka_bootstrap,
            [REWARDS],
            lambda ms: keyed(ms, owner.did) >= 1 and keyed(ms, bystander.owner.did) >= 1,
        )
        assert keyed(rewards, owner.did) == 1 and keyed(rewards, bystander.owner.did) == 1
    finally:
        worker.stop()
