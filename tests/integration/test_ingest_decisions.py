"""A person's reward decisions at ingest, on the real broker and PostgreSQL: ingest follows
city.reward-decisions.v1 into its table (a redelivered decision is one row, a malformed one goes to the DLQ
with the reason and the consumer goes on), and serves them only to the wallet's signed read or an operator's."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from services.common import attestation, topics
from services.common.events import rfc3339
from services.common.kafka import KafkaProducer, OutgoingRecord
from services.common.settings import PlatformSettings
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from tests.support.asgi import assert_problem, running
from tests.support.factories import ORACLE, decisions_record
from tests.support.topics import unique_group, values_with_keys
from tests.support.waiting import until

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


def decision(
    wallet: str, device: str, seq: int, *, reasons: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A decision as the rewards worker publishes it: rewarded unless `reasons` say why not."""
    reading_id = hashlib.sha256(f"{device}/{seq}".encode()).hexdigest()
    rewards = (
        []
        if reasons
        else [
            {
                "reward_id": hashlib.sha256(f"{reading_id}/data.noise".encode()).hexdigest(),
                "rule": "data.noise",
                "amount": 1000,
            }
        ]
    )
    return {
        "reading_id": reading_id,
        "device_id": device,
        "seq": seq,
        "wallet": wallet,
        "kind": "noise",
        "zone": "old-town",
        "ts": rfc3339(NOW - timedelta(minutes=10 - seq)),
        "values": {"db_a": 41.5},
        "policy_version": "2026.1",
        "policy_hash": "0" * 64,
        "outcome": "unrewarded" if reasons else "rewarded",
        "rewards": rewards,
        "reasons": reasons or [],
        "counted": True,
        "partition": 0,
        "offset": seq,
        "decided_by": "smartcity-rewards",
    }


def records(values: list[Any]) -> list[OutgoingRecord]:
    """A record of each value, attested by the rewards oracle."""
    return [decisions_record(v["device_id"] if isinstance(v, dict) else "junk", [v]) for v in values]


async def test_a_persons_decisions_are_kept_once_and_read_only_by_them_or_an_operator(
    platform_settings: PlatformSettings, kafka_bootstrap: str
) -> None:
    alice, bob, operator = Keypair.generate(), Keypair.generate(), Keypair.generate()
    alices_device, bobs_device = Keypair.generate().did, Keypair.generate().did
    capped = [{"code": "cap-wallet-day", "detail": "the wallet's day is full", "rule": "data.noise"}]
    first, second = (
        decision(alice.did, alices_device, 1),
        decision(alice.did, alices_device, 2, reasons=capped),
    )
    third = decision(alice.did, alices_device, 3, reasons=[{"code": "outlier", "detail": "z 9.1"}])
    bobs = decision(bob.did, bobs_device, 1)
    broken_key, forged_key = Keypair.generate().did, Keypair.generate().did
    malformed = {"reading_id": "not-a-hash", "device_id": broken_key}
    # Decisions nobody (or an outsider) attested: they would tell Alice her reading earned what it did not.
    forged = {**decision(alice.did, alices_device, 4), "device_id": forged_key}
    settings = IngestSettings(
        operators=[operator.did],
        decisions_group=unique_group("ingest-decisions"),
        rewards_oracles=[ORACLE.did],
    )
    producer = KafkaProducer(kafka_bootstrap, "decisions-test")
    try:
        async with running(create_app(platform_settings, settings)) as client:
            # A redelivery of the first (another offset, as after a rebuild) and a malformed record beside them.
            batch = [
                *records([first, malformed]),
                decisions_record(alices_device, [second, bobs]),  # a readings record's decisions, in one
                OutgoingRecord(topics.REWARD_DECISIONS, forged_key, attestation.encode(forged)),
                decisions_record(forged_key, [forged], oracle=Keypair.generate()),
                *records([third, {**first, "offset": 99}]),
            ]
            assert await producer.send_batch(batch) == [None] * len(batch)
            as_alice = SignedReadAuth(alice)

            async def alices() -> list[dict[str, Any]] | None:
                found = await client.get(f"/v1/wallets/{alice.did}/decisions", auth=as_alice)
                assert found.status_code == 200, found.text
                listed = found.json()["decisions"]
                return listed if len(listed) >= 3 else None

            listed = await until(alices, "alice's decisions")
            assert [d["reading_id"] for d in listed] == [
                third["reading_id"],
                second["reading_id"],
                first["reading_id"],
            ]
            assert listed[1]["outcome"] == "unrewarded" and listed[1]["reasons"] == capped
            assert listed[2]["rewards"] == [{"rule": "data.noise", "amount": 1000}]
            assert "values" not in listed[0] and "zone" not in listed[0]  # kept without the reading's data

            (dead,) = await values_with_keys(kafka_bootstrap, topics.REWARD_DECISIONS.dlq, {broken_key}, 1)
            assert dead["reason"].startswith("schema") and dead["consumer"] == settings.decisions_group
            refused = await values_with_keys(kafka_bootstrap, topics.REWARD_DECISIONS.dlq, {forged_key}, 2)
            assert sorted(d["reason"].split(":")[0] for d in refused) == ["unattested", "untrusted-attestor"]
            assert forged["reading_id"] not in [d["reading_id"] for d in listed]

            page = (await client.get(f"/v1/wallets/{alice.did}/decisions?limit=2", auth=as_alice)).json()
            assert [d["reading_id"] for d in page["decisions"]] == [third["reading_id"], second["reading_id"]]
            rest = await client.get(
                f"/v1/wallets/{alice.did}/decisions", params={"before": page["next_before"]}, auth=as_alice
            )
            assert [d["reading_id"] for d in rest.json()["decisions"]] == [first["reading_id"]]
            assert rest.json()["next_before"] is None
            bad_cursor = await client.get(f"/v1/wallets/{alice.did}/decisions?before=nonsense", auth=as_alice)
            assert_problem(bad_cursor, 400)

            one = await client.get(f"/v1/wallets/{alice.did}/decisions/{second['reading_id']}", auth=as_alice)
            assert one.status_code == 200 and one.json()["reasons"] == capped

            # Nobody else: anonymous 401, another wallet 403 (the list and a single decision), an operator reads.
            assert_problem(await client.get(f"/v1/wallets/{alice.did}/decisions"), 401)
            as_bob = SignedReadAuth(bob)
            refused = await client.get(f"/v1/wallets/{alice.did}/decisions", auth=as_bob)
            assert assert_problem(refused, 403)["type"].endswith("/read-forbidden")
            assert_problem(
                await client.get(f"/v1/wallets/{alice.did}/decisions/{first['reading_id']}", auth=as_bob), 403
            )
            # Bob's own decision is not found under Alice's wallet.
            assert_problem(
                await client.get(f"/v1/wallets/{alice.did}/decisions/{bobs['reading_id']}", auth=as_alice),
                404,
            )
            as_operator = SignedReadAuth(operator)
            operated = await client.get(f"/v1/wallets/{alice.did}/decisions", auth=as_operator)
            assert [d["reading_id"] for d in operated.json()["decisions"]] == [
                d["reading_id"] for d in listed
            ]
            bob_seen = await client.get(f"/v1/wallets/{bob.did}/decisions", auth=as_bob)
            assert [d["reading_id"] for d in bob_seen.json()["decisions"]] == [bobs["reading_id"]]

            # Each decision is one row, however often it came.
            engine = client._transport.app.state.engine  # type: ignore[attr-defined]
            async with engine.connect() as conn:
                count = (
                    await conn.execute(
                        text("SELECT count(*) FROM reward_decisions WHERE reading_id = :r"),
                        {"r": first["reading_id"]},
                    )
                ).scalar_one()
            assert count == 1
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
    finally:
        producer.close()
