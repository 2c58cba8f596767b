"""Nothing lost, nothing stuck: on every topic a service consumes, a record it cannot handle (5 MB, not JSON,
an impossible date, schema-valid but not signed or attested by whom it must be) goes to the topic's DLQ with
the reason, and the good record produced right behind it on the same partition still takes effect.

city.consents.v1 is followed by every ingest instance's `ConsentView` (a thread, no consumer group);
city.merchants.v1 is folded by the ledger (`MerchantFold` behind a `BatchConsumer`). Real broker and
PostgreSQL; every wait is bounded by `until`, none is a timing under test.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, Producer
from prometheus_client import REGISTRY

from services.common import attestation, events
from services.common.consents import (
    ConsentBook,
    ConsentChange,
    ConsentView,
    check_consent,
)
from services.common.dead_letters import DLQ_VALUE_MAX, DeadLetterProducer
from services.common.ids import reading_id
from services.common.kafka import OutgoingRecord, attested
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.common.topics import CONSENTS, MERCHANTS, REWARD_DECISIONS, Topic
from services.ingest.app import create_app as create_ingest
from services.ledger.app import create_app as create_ledger
from services.ledger.settings import LedgerSettings
from services.rewards.changelog import Rebuilt, rebuild_partitions
from services.rewards.engine import Decision
from tests.support.asgi import running
from tests.support.consents import consent
from tests.support.factories import DIRECTORY, ORACLE, TEST_ROLES
from tests.support.topics import end_offsets, records_published_during, unique_group
from tests.support.waiting import until

pytestmark = pytest.mark.integration

FIVE_MB = 5 * 1024 * 1024
IMPOSSIBLE = "2026-99-99T99:99:99Z"
"""A time the schemas' pattern lets through, on a day that does not exist."""

Raw = tuple[bytes, bytes, list[tuple[str, bytes]]]
"""A record as it goes on the wire: key, value, headers."""


def _produce(bootstrap: str, topic: Topic, partition: int, records: list[Raw]) -> list[tuple[int, int]]:
    """Produce `records` in order to one partition of `topic` (so the good one lands right behind the poison,
    whatever the keys hash to), up to 10 MB each; return the (partition, offset) of each."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "message.max.bytes": 10_000_000, "enable.idempotence": True}
    )
    delivered: list[tuple[int, int] | None] = [None] * len(records)

    def report(index: int, err: KafkaError | None, message: Message) -> None:
        assert err is None, err
        delivered[index] = (message.partition(), message.offset())

    for index, (key, value, headers) in enumerate(records):
        producer.produce(
            topic.name,
            key=key,
            value=value,
            headers=headers,
            partition=partition,
            on_delivery=lambda err, msg, i=index: report(i, err, msg),
        )
    assert producer.flush(30) == 0
    assert all(d is not None for d in delivered)
    return [d for d in delivered if d is not None]


async def produce(
    bootstrap: str, topic: Topic, records: list[Raw], partition: int = 0
) -> list[tuple[int, int]]:
    return await asyncio.to_thread(_produce, bootstrap, topic, partition, records)


async def dlq_entry(
    bootstrap: str, topic: Topic, since: dict[int, int], key: str, consumer: str
) -> tuple[dict[str, Any], int]:
    """The DLQ entry of `topic` that `consumer` wrote, since `since`, for the record keyed `key`; and the size
    of the entry on the wire."""

    async def probe() -> tuple[dict[str, Any], int] | None:
        for message in await records_published_during(bootstrap, topic.dlq, since):
            entry = json.loads(message.value())
            if entry["key"] == key and entry["consumer"] == consumer:
                return entry, len(message.value())
        return None

    return await until(probe, f"{consumer}'s {topic.dlq.name} entry for {key}")


def consent_record(change: ConsentChange) -> Raw:
    """A good consent record as identity publishes it."""
    value = events.encode_json(change.record(datetime.now(UTC)))
    return change.key.encode(), value, []


def record_of(signed: dict[str, Any], status: str = "granted") -> dict[str, Any]:
    """The city.consents.v1 value carrying `signed`, whatever it holds (no check: for poison)."""
    return {
        "subject": signed["subject"],
        "category": signed["category"],
        "grantee": signed["grantee"],
        "purpose": signed.get("purpose", ""),
        "status": status,
        "changed_at": events.now_rfc3339(),
        "consent": signed,
    }


def refused(client: str, outcome: str = "refused") -> float:
    """How many consent records the view `client` counted with `outcome`."""
    value = REGISTRY.get_sample_value(
        "smartcity_consent_records_total", {"client": client, "outcome": outcome}
    )
    return value or 0.0


@dataclass(frozen=True)
class Poison:
    """A record the consumer cannot handle, and the start of the reason it must be dead-lettered with."""

    value: bytes
    reason: str
    category: str | None = None
    """The category it would grant if the view took it (it must not)."""


def huge_consent(subject: Keypair) -> Poison:
    return Poison(b'{"subject": "' + b"x" * FIVE_MB + b'"}', "schema")


def impossible_consent(subject: Keypair) -> Poison:
    # Signed by its subject, and on a day that does not exist.
    signed = subject.sign({**consent(subject, "mobility"), "issued_at": IMPOSSIBLE})
    return Poison(events.encode_json(record_of(signed)), "impossible-date: issued_at", "mobility")


def not_json_consent(subject: Keypair) -> Poison:
    return Poison(b"{not json", "malformed JSON")


def forged_consent(subject: Keypair) -> Poison:
    # Well formed and schema-valid, but the signature is someone else's: not the subject's consent.
    mallory = Keypair.generate()
    forged = mallory.sign({k: v for k, v in consent(subject, "mobility").items() if k != "sig"})
    return Poison(events.encode_json(record_of(forged)), "not signed by its subject", "mobility")


@asynccontextmanager
async def consent_view(bootstrap: str, client_id: str) -> AsyncIterator[ConsentView]:
    """A started, caught-up consent view that dead-letters what it refuses, as ingest's does."""
    dead_letters = DeadLetterProducer(bootstrap, client_id)
    view = ConsentView(bootstrap, client_id=client_id, dead_letter=dead_letters)
    try:
        await asyncio.to_thread(view.start)
        assert await asyncio.to_thread(view.wait_ready, 30)
        yield view
    finally:
        await asyncio.to_thread(view.close)
        await asyncio.to_thread(dead_letters.close)


@pytest.mark.parametrize("poison", [huge_consent, impossible_consent, not_json_consent, forged_consent])
async def test_a_consent_record_the_view_refuses_is_dead_lettered_and_the_grant_behind_it_applies(
    kafka_bootstrap: str, poison: Callable[[Keypair], Poison]
) -> None:
    alice = Keypair.generate()
    bad = poison(alice)
    bad_key = f"{alice.did}/poison"
    client = unique_group("test-poison-view")
    since = await end_offsets(kafka_bootstrap, CONSENTS.dlq)
    async with consent_view(kafka_bootstrap, client) as view:
        before = refused(client)  # the view has read the topic so far, other tests' poison included
        good = consent_record(check_consent(consent(alice, "energy")))
        [(partition, offset), _] = await produce(
            kafka_bootstrap, CONSENTS, [(bad_key.encode(), bad.value, []), good]
        )

        async def applied() -> bool:
            return view.allows(alice.did, "energy")

        await until(applied, "the grant behind the poison to apply")
        if bad.category is not None:
            assert not view.allows(alice.did, bad.category)
        assert refused(client) - before == 1

        entry, size = await dlq_entry(kafka_bootstrap, CONSENTS, since, bad_key, client)
        assert entry["reason"].startswith(bad.reason), entry["reason"]
        assert (entry["source_topic"], entry["partition"], entry["offset"]) == (
            CONSENTS.name,
            partition,
            offset,
        )
        assert entry["value_size"] == len(bad.value)
        assert entry["value_sha256"] == hashlib.sha256(bad.value).hexdigest()
        assert entry["value_truncated"] is (len(bad.value) > DLQ_VALUE_MAX)
        if entry["value_truncated"]:
            assert size < 16 * 1024 and bad.value.startswith(entry["value"].encode())
        else:
            assert entry["value"].encode() == bad.value
        assert view.healthy()


async def test_a_consent_whose_fold_raises_is_dead_lettered_and_the_view_goes_on(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A valid consent on which the fold raises (a bug, simulated for one subject) must not stop the thread.
    victim, alice = Keypair.generate(), Keypair.generate()
    fold = ConsentBook.apply

    def apply(book: ConsentBook, change: ConsentChange) -> bool:
        if change.subject == victim.did:
            raise RuntimeError("the fold broke on this record")
        return fold(book, change)

    monkeypatch.setattr(ConsentBook, "apply", apply)
    client = unique_group("test-poison-view")
    since = await end_offsets(kafka_bootstrap, CONSENTS.dlq)
    async with consent_view(kafka_bootstrap, client) as view:
        before = refused(client, "failed")
        broken = consent_record(check_consent(consent(victim, "energy")))
        [(partition, offset), _] = await produce(
            kafka_bootstrap, CONSENTS, [broken, consent_record(check_consent(consent(alice, "energy")))]
        )

        async def applied() -> bool:
            return view.allows(alice.did, "energy")

        await until(applied, "the grant behind the broken one to apply")
        assert not view.allows(victim.did, "energy")
        assert refused(client, "failed") - before == 1
        entry, _ = await dlq_entry(kafka_bootstrap, CONSENTS, since, broken[0].decode(), client)
        assert entry["reason"] == "fold failed: RuntimeError: the fold broke on this record"
        assert (entry["partition"], entry["offset"]) == (partition, offset)


async def test_ingest_dead_letters_the_consent_records_it_refuses(
    platform_settings: PlatformSettings,
) -> None:
    bootstrap = platform_settings.bootstrap_servers
    alice = Keypair.generate()
    bad_key = f"{alice.did}/poison"
    since = await end_offsets(bootstrap, CONSENTS.dlq)
    app = create_ingest(platform_settings)
    async with running(app) as client:
        good = consent_record(check_consent(consent(alice, "environment")))
        [(partition, offset), _] = await produce(
            bootstrap, CONSENTS, [(bad_key.encode(), b"{not json", []), good]
        )

        async def applied() -> bool:
            return app.state.consents.allows(alice.did, "environment")

        await until(applied, "ingest to see the grant behind the poison")
        entry, _ = await dlq_entry(bootstrap, CONSENTS, since, bad_key, "ingest")
        assert entry["reason"].startswith("malformed JSON")
        assert (entry["partition"], entry["offset"]) == (partition, offset)
        assert (await client.get("/readyz")).status_code == 200


def merchant_value(wallet: Keypair, category: str = "grocery", **facts: Any) -> dict[str, Any]:
    """A city.merchants.v1 value, as the directory publishes it for a verified merchant."""
    registration = wallet.sign(
        {
            "wallet": wallet.did,
            "name": f"shop {category}",
            "category": category,
            "locally_owned": True,
            "accepts": ["CITY", "AID"],
        }
    )
    return {
        **{k: v for k, v in registration.items() if k != "sig"},
        "verified": True,
        "active": True,
        "updated_at": events.now_rfc3339(),
        "registration": registration,
        **facts,
    }


def merchant_record(value: dict[str, Any], attestor: Keypair = DIRECTORY) -> Raw:
    """`value` as the directory puts it on city.merchants.v1: its JCS bytes, attested by `attestor`."""
    headers = events.cloudevent_headers("city.merchant.v1", "tests", value["wallet"])
    [record] = attested(attestor, [OutgoingRecord(MERCHANTS, value["wallet"], value, headers)])
    return record.key.encode(), record.value, record.headers


def huge_merchant(wallet: Keypair) -> tuple[Raw, str]:
    return (wallet.did.encode(), b'{"wallet": "' + b"x" * FIVE_MB + b'"}', []), "schema"


def impossible_merchant(wallet: Keypair) -> tuple[Raw, str]:
    return merchant_record(merchant_value(wallet, updated_at=IMPOSSIBLE)), "impossible-date: updated_at"


def not_json_merchant(wallet: Keypair) -> tuple[Raw, str]:
    return (wallet.did.encode(), b"{not json", []), "malformed JSON"


def unauthorised_merchant(wallet: Keypair) -> tuple[Raw, str]:
    # Schema-valid and attested, but by a key without the merchant-verifier role.
    return merchant_record(merchant_value(wallet), attestor=Keypair.generate()), "role-not-held"


async def merchants_held(app: Any, wallet: str) -> int:
    """How many rows of the ledger's merchants table are `wallet`'s."""
    async with app.state.store.connection() as conn:
        return await conn.fetchval("SELECT count(*) FROM merchants WHERE wallet = $1", wallet)


@pytest.mark.parametrize(
    "poison", [huge_merchant, impossible_merchant, not_json_merchant, unauthorised_merchant]
)
async def test_a_merchant_record_the_ledger_cannot_fold_is_dead_lettered_and_the_one_behind_it_folds(
    platform_settings: PlatformSettings, poison: Callable[[Keypair], tuple[Raw, str]]
) -> None:
    bootstrap = platform_settings.bootstrap_servers
    settings = LedgerSettings(
        consumer_group=unique_group("ledger-poison-merchants"),
        seal_interval_ms=50,
        verify_workers=0,
        genesis_roles=TEST_ROLES,
    )
    shady, grocer = Keypair.generate(), Keypair.generate()
    bad, reason = poison(shady)
    since = await end_offsets(bootstrap, MERCHANTS.dlq)
    app = create_ledger(platform_settings, settings)
    async with running(app) as client:
        good = merchant_record(merchant_value(grocer))
        [(partition, offset), _] = await produce(bootstrap, MERCHANTS, [bad, good])

        async def folded() -> bool:
            return await merchants_held(app, grocer.did) == 1

        await until(folded, "the merchant record behind the poison to be folded")
        assert await merchants_held(app, shady.did) == 0
        entry, size = await dlq_entry(bootstrap, MERCHANTS, since, shady.did, settings.merchants_group)
        assert entry["reason"].startswith(reason), entry["reason"]
        assert (entry["source_topic"], entry["partition"], entry["offset"]) == (
            MERCHANTS.name,
            partition,
            offset,
        )
        raw = bad[1]
        assert entry["value_size"] == len(raw)
        assert entry["value_sha256"] == hashlib.sha256(raw).hexdigest()
        assert entry["value_truncated"] is (len(raw) > DLQ_VALUE_MAX)
        if entry["value_truncated"]:
            assert size < 16 * 1024 and raw.startswith(entry["value"].encode())
        else:
            assert entry["value"].encode() == raw
        assert (await client.get("/readyz")).status_code == 200


# --- city.reward-decisions.v1: read back by the rewards worker when it rebuilds its state --------------------


def _decision(app_id: str, device: Keypair, seq: int) -> dict[str, Any]:
    """A decision of `app_id` paying 500 for `device`'s reading `seq`, as the worker publishes it."""
    reading = reading_id(device.did, seq)
    return Decision(
        reading_id=reading,
        device_id=device.did,
        seq=seq,
        wallet=Keypair.generate().did,
        kind="air_quality",
        zone="old-town",
        ts=events.now_rfc3339(),
        values={"pm2_5": 8.0},
        policy_version="it-1",
        policy_hash="0" * 64,
        payments=(("data.air_quality", 500),),
        reasons=(),
        counted=True,
    ).as_json(partition=0, offset=seq) | {"decided_by": app_id}


def _impossible_decision(app_id: str, device: Keypair) -> bytes:
    """This app's decision on a reading taken on a day that does not exist."""
    return events.encode_json({**_decision(app_id, device, seq=6), "ts": IMPOSSIBLE})


async def _rebuild(
    bootstrap: str, app_id: str, since: float, dead_letter: DeadLetterProducer | None = None
) -> Rebuilt:
    """Readings partition 0's state rebuilt by app `app_id` from the decisions since `since`, as `ORACLE`'s."""
    rebuilt = await asyncio.to_thread(
        rebuild_partitions,
        bootstrap,
        app_id=app_id,
        oracles={ORACLE.did},
        partitions=[0],
        since=since,
        now=datetime.now(UTC).timestamp(),
        recent_limit=100,
        dead_letter=dead_letter,
    )
    return rebuilt[0]


def _oracle_attested(value: bytes, oracle: Keypair | None = ORACLE) -> list[tuple[str, bytes]]:
    """The attestation header of a decisions record of one line, by `oracle` (None: no header)."""
    if oracle is None:
        return []
    return [(attestation.HEADER, attestation.attest_record(oracle, REWARD_DECISIONS.name, [value]).encode())]


@pytest.mark.parametrize(
    ("make_poison", "attestor", "reason"),
    [
        (lambda _app, _device: b"x" * FIVE_MB, ORACLE, "malformed JSON"),
        (lambda _app, _device: b"\xff not json", ORACLE, "malformed JSON"),
        (lambda _app, _device: b'{"reading_id": "not a decision"}', ORACLE, "schema"),
        (_impossible_decision, ORACLE, "impossible-date"),
        # This app's decision to the letter, but not attested by its key: it would change caps and statistics.
        (lambda app, device: events.encode_json(_decision(app, device, seq=6)), None, "unattested"),
        (
            lambda app, device: events.encode_json(_decision(app, device, seq=6)),
            Keypair.generate(),
            "untrusted-attestor",
        ),
    ],
    ids=["5-mb", "not-json", "wrong-shape", "impossible-date", "unattested", "outsider"],
)
async def test_a_decision_the_rebuild_cannot_read_is_dead_lettered_and_the_one_behind_it_applied(
    kafka_bootstrap: str,
    make_poison: Callable[[str, Keypair], bytes],
    attestor: Keypair | None,
    reason: str,
):
    app_id = unique_group("rewards-rebuild")
    device = Keypair.generate()
    poison = make_poison(app_id, device)
    good = attestation.encode(_decision(app_id, device, seq=7))
    since = await end_offsets(kafka_bootstrap, REWARD_DECISIONS.dlq)
    started = datetime.now(UTC).timestamp() - 1
    await produce(
        kafka_bootstrap,
        REWARD_DECISIONS,
        [
            (device.did.encode(), poison, _oracle_attested(poison, attestor)),
            (device.did.encode(), good, _oracle_attested(good)),
        ],
    )
    dead_letters = DeadLetterProducer(kafka_bootstrap, client_id=app_id)
    try:
        state = (await _rebuild(kafka_bootstrap, app_id, started, dead_letters)).state
        entry, size = await dlq_entry(kafka_bootstrap, REWARD_DECISIONS, since, device.did, app_id)
    finally:
        dead_letters.close()
    assert json.loads(good)["reading_id"] in state.recent  # the decision behind the poison is applied
    if attestor is not ORACLE:  # a decision, but not the worker's: not its history
        assert json.loads(poison)["reading_id"] not in state.recent
    assert entry["reason"].startswith(reason) and entry["source_topic"] == REWARD_DECISIONS.name
    assert entry["value_size"] == len(poison)
    assert entry["value_sha256"] == hashlib.sha256(poison).hexdigest()
    assert entry["value_truncated"] is (len(poison) > DLQ_VALUE_MAX) and size < 16 * 1024


async def test_a_decisions_record_replayed_onto_the_topic_counts_once_in_a_rebuild(kafka_bootstrap: str):
    app_id = unique_group("rewards-replay")
    device = Keypair.generate()
    decided = _decision(app_id, device, seq=7)
    line = attestation.encode(decided)
    later = attestation.encode(_decision(app_id, device, seq=8))
    started = datetime.now(UTC).timestamp() - 1
    # The genuine record, the next one, then the first again: produced by someone with write access.
    await produce(
        kafka_bootstrap,
        REWARD_DECISIONS,
        [(device.did.encode(), value, _oracle_attested(value)) for value in (line, later, line)],
    )
    rebuilt = await _rebuild(kafka_bootstrap, app_id, started)
    # Each pays 500 to its own wallet: the replay did not pay the first wallet's day twice.
    assert sorted(rebuilt.state.wallet_day.values()) == [500, 500]
    assert rebuilt.offset == 8
