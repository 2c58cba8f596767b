"""The ledger service end to end on the real broker and PostgreSQL: signed rewards in, signed blocks and
verifiable proofs out, bad rewards dead-lettered beside good ones."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from pydantic import SecretStr

from services.common import attestation, merkle, schemas, signing, topics
from services.common.dead_letters import DLQ_VALUE_MAX
from services.common.events import cloudevent_headers
from services.common.kafka import KafkaProducer, OutgoingRecord, batch_record
from services.common.policy import parse_policy
from services.common.settings import PlatformSettings
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair, b64url_encode
from services.common.topics import Topic
from services.ledger import chain
from services.ledger.app import create_app
from services.ledger.rewards import verify_disclosure
from services.ledger.settings import LedgerSettings
from services.ledger.transactions import GENESIS_TX_ID
from tests.support.asgi import assert_problem
from tests.support.factories import (
    AS_AUDITOR,
    INGEST,
    ORACLE,
    TEST_POLICY,
    TEST_ROLES,
    envelope_of,
    policy_publication,
    public,
    recommitted,
    reward_records,
    signed_reward,
)
from tests.support.topics import end_offsets, records_published_during, unique_group, values_with_keys
from tests.support.waiting import until

pytestmark = pytest.mark.integration

DEADLINE_S = 45


def read_topic(bootstrap: str, topic: Topic, enough: Callable[[list[Any]], bool]) -> list[tuple[str, Any]]:
    """(key, value) of a topic's records from the beginning, until `enough(values)` (no group join)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_group("ledger-reader")})
    consumer.assign([TopicPartition(topic.name, p, OFFSET_BEGINNING) for p in range(topic.partitions)])
    records: list[tuple[str, Any]] = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        while not enough([value for _, value in records]) and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.2):
                if not msg.error():
                    records.append((msg.key().decode(), json.loads(msg.value())))
    finally:
        consumer.close()
    return records


async def publish(producer: KafkaProducer, rewards: list[dict[str, Any]]) -> None:
    """Publish `rewards` as the rewards worker does: attested by its oracle key, in one batch."""
    await send(producer, reward_records(rewards))


async def send(producer: KafkaProducer, records: list[OutgoingRecord]) -> None:
    assert await producer.send_batch(records) == [None] * len(records)


async def test_rewards_settle_into_signed_blocks_with_verifiable_proofs(
    platform_settings: PlatformSettings, kafka_bootstrap: str
) -> None:
    key = Keypair.generate()
    settings = LedgerSettings(
        signing_key=SecretStr(b64url_encode(key.seed)),
        consumer_group=unique_group("ledger"),
        seal_interval_ms=50,
        genesis_roles=TEST_ROLES,
    )
    alice, bob, carol, mallory = (Keypair.generate() for _ in range(4))
    as_alice = SignedReadAuth(alice)
    wave1 = [signed_reward(alice, seq=i, amount=1000 + i) for i in range(4)]
    wave1 += [signed_reward(bob, seq=i, amount=7) for i in range(3)]
    forged = signed_reward(bob, seq=50)
    inflated = envelope_of(forged)
    inflated["reading"]["values"]["pm25"] = 999.0
    forged = recommitted(forged, inflated)  # committed to by the oracle, not what ingest attested
    stolen = public(signed_reward(alice, seq=51), wallet=carol.did)  # alice's device, carol's wallet
    # An outsider with write access to the topic: a 1,000,000 CITY bonus for a reading of a device nobody
    # registered, "attested" by their own keys; and a reward with no attestation at all.
    bonus = signed_reward(mallory, seq=1, amount=10**12, rule="bonus", ingest=mallory)
    unattested = signed_reward(mallory, seq=2, amount=10**12)
    producer = KafkaProducer(kafka_bootstrap, "ledger-test")

    app = create_app(platform_settings, settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://ledger") as client,
    ):
        # The policy the rewards name goes on the chain first, as the rewards worker puts it there.
        published = await client.post("/v1/policies", json=policy_publication())
        assert published.status_code == 201, published.text
        assert (await client.post("/v1/policies", json=policy_publication())).status_code == 200
        assert (await client.get(f"/v1/policies/{TEST_POLICY.hash}")).json() == TEST_POLICY.document
        # The first reward twice (a redelivery), and bad rewards between good ones.
        await publish(producer, [*wave1[:2], forged, wave1[0], *wave1[2:5], stolen, *wave1[5:]])
        await send(producer, reward_records([bonus], oracle=mallory))
        await send(
            producer,
            [OutgoingRecord(topics.REWARDS, mallory.did, unattested, cloudevent_headers("x", "tests", "1"))],
        )

        async def sealed(wallet: str, count: int) -> list[dict[str, Any]] | None:
            items = (await client.get(f"/v1/accounts/{wallet}/transactions", auth=AS_AUDITOR)).json()[
                "transactions"
            ]
            return items if len(items) == count and all(i["leaf_index"] is not None for i in items) else None

        alice_txs = await until(lambda: sealed(alice.did, 4), "alice's rewards to be sealed")
        bob_txs = await until(lambda: sealed(bob.did, 3), "bob's rewards to be sealed")

        # Balances: the redelivered reward paid once; the bad rewards paid nothing.
        assert (await client.get(f"/v1/accounts/{alice.did}", auth=SignedReadAuth(alice))).json() == {
            "wallet": alice.did,
            "balances": {"CITY": 4006, "AID": 0, "CREDIT": 0},
        }
        assert (await client.get(f"/v1/accounts/{bob.did}", auth=SignedReadAuth(bob))).json()["balances"][
            "CITY"
        ] == 21
        assert (await client.get(f"/v1/accounts/{carol.did}", auth=SignedReadAuth(carol))).json()[
            "balances"
        ] == {
            "CITY": 0,
            "AID": 0,
            "CREDIT": 0,
        }
        assert sorted(i["changes"]["CITY"] for i in alice_txs) == [1000, 1001, 1002, 1003]

        # A wallet's balances and history are personal: signed reads by the holder or an auditor only.
        for path in (f"/v1/accounts/{alice.did}", f"/v1/accounts/{alice.did}/transactions"):
            assert assert_problem(await client.get(path), 401)["type"].endswith("/signature-required")
            assert assert_problem(await client.get(path, auth=SignedReadAuth(bob)), 403)["type"].endswith(
                "/read-forbidden"
            )
            assert (await client.get(path, auth=as_alice)).status_code == 200
            assert (await client.get(path, auth=AS_AUDITOR)).json() == (
                await client.get(path, auth=as_alice)
            ).json()
        assert_problem(await client.get("/v1/accounts", auth=as_alice), 403)  # naming wallets: auditors only

        # The bad rewards are in the DLQ with their reasons.
        bad_ids = {
            forged["reward"]["reward_id"]: "reading-not-attested",
            stolen["reward"]["reward_id"]: "wallet-mismatch",
            bonus["reward"]["reward_id"]: "role-not-held",
            unattested["reward"]["reward_id"]: "reward-unattested",
        }

        def ours(values: list[Any]) -> dict[str, str]:
            found = {}
            for v in values:
                if v["consumer"] == settings.consumer_group and v["value"]:
                    reward_id = json.loads(v["value"]).get("reward", {}).get("reward_id")
                    if reward_id in bad_ids:
                        found[reward_id] = v["reason"]
            return found

        dead = await asyncio.to_thread(
            read_topic, kafka_bootstrap, topics.REWARDS.dlq, lambda vs: len(ours(vs)) == len(bad_ids)
        )
        reasons = ours([v for _, v in dead])
        assert {rid: reason.split(":")[0] for rid, reason in reasons.items()} == bad_ids

        # The checkpoint is signed by the ledger key; every settled transaction is provably in it.
        first = chain.BlockHeader.from_json((await client.get("/v1/checkpoint")).json())
        chain.verify_header(first, key.did)
        alice_ids = {i["tx_id"] for i in alice_txs}
        for tx_id in [GENESIS_TX_ID, *(i["tx_id"] for i in alice_txs + bob_txs)]:
            response = await client.get(f"/v1/transactions/{tx_id}")
            assert response.status_code == 200
            record = response.json()
            assert signing.canonical_bytes(record) == response.content  # the body is the JCS leaf itself
            leaf = merkle.leaf_hash(response.content)
            # At the checkpoint's size: the chain may grow meanwhile (the topic holds other tests' rewards).
            proof = (
                await client.get(f"/v1/transactions/{tx_id}/proof", params={"tree_size": first.tree_size})
            ).json()
            assert proof["tree_size"] == first.tree_size
            assert proof["leaf_hash"] == leaf.hex()
            path = [bytes.fromhex(h) for h in proof["audit_path"]]
            merkle.verify_inclusion(leaf, proof["leaf_index"], first.tree_size, path, first.root)
            if record["type"] == "reward":
                await _evidence_is_private_and_verifiable(
                    client, record, alice if tx_id in alice_ids else bob
                )

        # A second wave grows the chain; the new checkpoint is consistent with the first.
        wave2 = [signed_reward(carol, seq=i, amount=500) for i in range(2)]
        await publish(producer, wave2)
        await until(lambda: sealed(carol.did, 2), "carol's rewards to be sealed")
        second = chain.BlockHeader.from_json((await client.get("/v1/checkpoint")).json())
        chain.verify_header(second, key.did)
        assert second.tree_size >= first.tree_size + 2
        consistency = (
            await client.get("/v1/consistency", params={"first": first.tree_size, "second": second.tree_size})
        ).json()
        assert (consistency["first"], consistency["second"]) == (first.tree_size, second.tree_size)
        proof_hashes = [bytes.fromhex(h) for h in consistency["proof"]]
        merkle.verify_consistency(first.tree_size, second.tree_size, first.root, second.root, proof_hashes)
        old = (
            await client.get(
                f"/v1/transactions/{alice_txs[0]['tx_id']}/proof", params={"tree_size": first.tree_size}
            )
        ).json()
        merkle.verify_inclusion(
            bytes.fromhex(old["leaf_hash"]),
            old["leaf_index"],
            first.tree_size,
            [bytes.fromhex(h) for h in old["audit_path"]],
            first.root,
        )

        # The blocks form one chain holding every transaction once.
        previous: chain.BlockHeader | None = None
        sealed_ids: list[str] = []
        for height in range(second.height + 1):
            body = (await client.get(f"/v1/blocks/{height}")).json()
            header = chain.BlockHeader.from_json({f: body[f] for f in chain.HEADER_FIELDS})
            chain.verify_header(header, key.did)
            chain.verify_link(previous, header)
            assert len(body["tx_ids"]) == header.tree_size - (previous.tree_size if previous else 0)
            sealed_ids += body["tx_ids"]
            previous = header
        assert header == second and len(sealed_ids) == len(set(sealed_ids)) == second.tree_size
        assert sealed_ids[0] == GENESIS_TX_ID

        # Settled events (one per wallet posting) and checkpoints were published after sealing.
        wallets = {alice.did: 4006, bob.did: 21, carol.did: 1000}
        settled = await asyncio.to_thread(
            read_topic,
            kafka_bootstrap,
            topics.LEDGER_SETTLED,
            lambda vs: sum(v["wallet"] in wallets for v in vs) >= 9,
        )
        totals = dict.fromkeys(wallets, 0)
        for wallet, event in settled:
            if event["wallet"] in wallets:
                schemas.validate(topics.LEDGER_SETTLED, event)
                assert wallet == event["wallet"] and event["currency"] == "CITY"
                totals[wallet] += event["delta"]
        assert totals == wallets
        checkpoints = await asyncio.to_thread(
            read_topic,
            kafka_bootstrap,
            topics.LEDGER_CHECKPOINTS,
            lambda vs: any(v["public_key"] == key.did and v["height"] == second.height for v in vs),
        )
        published = [v for k, v in checkpoints if v["public_key"] == key.did]
        assert {v["height"] for v in published} >= set(range(second.height + 1))
        for value in published:
            schemas.validate(topics.LEDGER_CHECKPOINTS, value)
            chain.verify_header(chain.BlockHeader.from_json(value), key.did)

        top = (
            await client.get("/v1/accounts", params={"limit": 1000, "currency": "CITY"}, auth=AS_AUDITOR)
        ).json()["accounts"]
        balances = [a["balance"] for a in top]
        assert balances == sorted(balances, reverse=True)
        assert {a["wallet"]: a["balance"] for a in top if a["wallet"] in wallets} == wallets
        page = (
            await client.get(f"/v1/accounts/{alice.did}/transactions", params={"limit": 3}, auth=as_alice)
        ).json()
        rest = (
            await client.get(
                f"/v1/accounts/{alice.did}/transactions",
                params={"before": page["next_before"]},
                auth=as_alice,
            )
        ).json()
        assert [i["tx_id"] for i in page["transactions"] + rest["transactions"]] == [
            i["tx_id"] for i in alice_txs
        ]

        assert (await client.get("/readyz")).status_code == 200
        metrics = (await client.get("/metrics")).text
        for name in ("rewards_settled_total", "blocks_sealed_total", "tree_size", "seal_duration_seconds"):
            assert f"smartcity_ledger_{name}" in metrics
        assert 'smartcity_ledger_rejections_total{reason="role-not-held"}' in metrics
        assert (await client.get(f"/v1/accounts/{mallory.did}", auth=SignedReadAuth(mallory))).json()[
            "balances"
        ]["CITY"] == 0

        # Malformed or impossible requests: 4xx problem JSON, never a 500.
        unknown = "0" * 64
        for path, params, status in [
            ("/v1/accounts/not-a-did", {}, 400),
            ("/v1/accounts/did:key:z6MkTooShort/transactions", {}, 400),
            ("/v1/accounts", {"limit": 0}, 422),
            ("/v1/accounts", {"currency": "EUR"}, 422),
            (f"/v1/accounts/{alice.did}/transactions", {"limit": "many"}, 422),
            ("/v1/transactions/xyz", {}, 400),
            (f"/v1/transactions/{unknown}", {}, 404),
            (f"/v1/transactions/{unknown}/proof", {}, 404),
            (f"/v1/transactions/{GENESIS_TX_ID}/proof", {"tree_size": second.tree_size + 1}, 400),
            (f"/v1/transactions/{alice_txs[0]['tx_id']}/proof", {"tree_size": 1}, 400),
            ("/v1/consistency", {"first": 3, "second": 2}, 400),
            ("/v1/consistency", {"first": 0, "second": 2}, 422),
            ("/v1/blocks/18446744073709551616", {}, 422),
            ("/v1/consistency", {"first": 1, "second": second.tree_size + 1}, 400),
            ("/v1/consistency", {"first": 1}, 422),
            ("/v1/blocks/999999", {}, 404),
            ("/v1/blocks/minus-one", {}, 422),
        ]:
            response = await client.get(path, params=params, auth=AS_AUDITOR)
            assert response.status_code == status, (path, params, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["status"] == status and response.json()["detail"]
    producer.close()


def _impossible_date(mallory: Keypair) -> bytes:
    """A reward attested by the oracle, for a reading ingest attested, whose time fits the schema's pattern
    but is no day at all."""
    value = signed_reward(mallory, seq=3, amount=5)
    envelope = envelope_of(value)
    envelope["reading"]["ts"] = "2026-99-99T99:99:99Z"
    value = recommitted(value, envelope, ingest=INGEST)
    return attestation.encode(public(value, earned_at="2026-99-99T99:99:99Z"))


@pytest.mark.parametrize(
    ("poison", "reason"),
    [
        (lambda _: b'{"reward_id": "' + b"x" * (5 * 1024 * 1024) + b'"}', "schema"),
        (lambda _: b"\xff\xfe not JSON", "malformed"),
        (_impossible_date, "impossible-date"),
    ],
    ids=["5-mb", "not-json", "impossible-date"],
)
async def test_a_poison_record_is_dead_lettered_small_and_the_reward_beside_it_settles(
    platform_settings: PlatformSettings,
    kafka_bootstrap: str,
    poison: Callable[[Keypair], bytes],
    reason: str,
) -> None:
    settings = LedgerSettings(
        consumer_group=unique_group("ledger-poison"), seal_interval_ms=50, genesis_roles=TEST_ROLES
    )
    alice, mallory = Keypair.generate(), Keypair.generate()
    value = poison(mallory)
    app = create_app(platform_settings, settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://ledger") as client,
    ):
        assert (await client.post("/v1/policies", json=policy_publication())).status_code == 201
        producer = KafkaProducer(kafka_bootstrap, "ledger-poison-test")
        try:
            # Attested by the oracle, as the rewards worker would: only its content is poison.
            try:
                covered = attestation.encode(topics.REWARDS.attested_part(json.loads(value)))
            except (ValueError, KeyError, TypeError):  # not a reward at all: the oracle attested its bytes
                covered = value
            [header] = attestation.attest(ORACLE, topics.REWARDS.name, [covered])
            big = Producer({"bootstrap.servers": kafka_bootstrap, "message.max.bytes": 10_000_000})
            big.produce(
                topics.REWARDS.name,
                key=mallory.did,
                value=value,
                headers=[(attestation.HEADER, header.encode())],
            )
            assert big.flush(30) == 0
            await publish(producer, [signed_reward(alice, seq=1, amount=42)])
        finally:
            producer.close()

        async def paid() -> bool:
            return (await client.get(f"/v1/accounts/{alice.did}", auth=SignedReadAuth(alice))).json()[
                "balances"
            ]["CITY"] == 42

        await until(paid, "the good reward to settle")
        [dead] = await values_with_keys(kafka_bootstrap, topics.REWARDS.dlq, {mallory.did}, 1)
        assert dead["reason"].startswith(reason), dead["reason"]
        assert (dead["value_size"], dead["value_truncated"]) == (len(value), len(value) > DLQ_VALUE_MAX)
        assert dead["value_sha256"] == hashlib.sha256(value).hexdigest()
        assert (await client.get(f"/v1/accounts/{mallory.did}", auth=SignedReadAuth(mallory))).json()[
            "balances"
        ]["CITY"] == 0
        assert (await client.get("/readyz")).status_code == 200


async def _evidence_is_private_and_verifiable(
    client: httpx.AsyncClient, record: dict[str, Any], holder: Keypair
) -> None:
    """A reward's public record shows no reading values, place or registration; the wallet it paid, and an
    auditor, read its disclosure, which opens the record's commitment and carries the signatures ingest
    checked. Anyone else is refused."""
    reward = record["reward"]
    assert not {"values", "zone", "registration", "reading"} & set(json.dumps(reward).split('"'))
    path = f"/v1/transactions/{record['tx_id']}/disclosure"
    assert assert_problem(await client.get(path), 401)["type"].endswith("/signature-required")
    assert_problem(await client.get(path, auth=SignedReadAuth(Keypair.generate())), 403)
    disclosure = (await client.get(path, auth=SignedReadAuth(holder))).json()
    assert (await client.get(path, auth=AS_AUDITOR)).json() == disclosure
    envelope, _ = verify_disclosure(reward, disclosure)
    signing.verify(envelope["reading"], "device_id")
    signing.verify(envelope["registration"], "owner")


async def test_a_batch_record_settles_line_by_line_and_a_tampered_one_is_refused_whole(
    platform_settings: PlatformSettings, kafka_bootstrap: str
) -> None:
    """A batch record of rewards (one oracle statement about their public parts) settles each good line; a line
    the ledger refuses goes to the DLQ alone, under its own attestation, so that it can be checked and sent
    again alone; a record altered after the oracle attested it goes whole, and nothing of it settles; a record
    of one reward beside them settles as before."""
    settings = LedgerSettings(
        consumer_group=unique_group("ledger-batch"), seal_interval_ms=50, genesis_roles=TEST_ROLES
    )
    alice, bob, carol, dave = (Keypair.generate() for _ in range(4))
    batch_key, tampered_key = Keypair.generate().did, Keypair.generate().did
    good = [signed_reward(alice, seq=1, amount=11), signed_reward(bob, seq=1, amount=12)]
    unknown_policy = signed_reward(
        carol, seq=1, policy=parse_policy({**TEST_POLICY.document, "version": "none"})
    )
    wrong_id = public(signed_reward(carol, seq=2), reward_id="0" * 64)
    altered = [signed_reward(dave, seq=1, amount=13), signed_reward(dave, seq=2, amount=14)]

    mixed, mixed_lines = _batch(batch_key, [good[0], unknown_policy, wrong_id, good[1]])
    tampered, tampered_lines = _batch(tampered_key, altered)
    forged_line = attestation.encode(public(altered[1], amount=14_000_000))
    tampered = replace(tampered, value=b"\n".join([tampered_lines[0], forged_line]))
    lone = signed_reward(alice, seq=2, amount=100)
    start = await end_offsets(kafka_bootstrap, topics.REWARDS.dlq)

    async with _ledger_with_test_policy(platform_settings, settings) as client:
        producer = KafkaProducer(kafka_bootstrap, "ledger-batch-test")
        try:
            await send(producer, [mixed, tampered, *reward_records([lone])])
        finally:
            producer.close()

        async def dead_letters() -> list[Any]:
            messages = await records_published_during(kafka_bootstrap, topics.REWARDS.dlq, start)
            return [m for m in messages if m.key().decode() in (batch_key, tampered_key)]

        async def good_lines_settled() -> bool:
            return await _balance(client, alice) == 11 + 100 and await _balance(client, bob) == 12

        await until(good_lines_settled, "the good lines and the lone reward")
        await until(lambda: _count_at_least(dead_letters, 3), "the refused lines and the tampered record")
        assert (await _balance(client, alice), await _balance(client, bob)) == (11 + 100, 12)
        assert (await _balance(client, carol), await _balance(client, dave)) == (0, 0)

        dead = {json.loads(m.value())["value"]: m for m in await dead_letters()}
        assert set(dead) == {mixed_lines[1].decode(), mixed_lines[2].decode(), tampered.value.decode()}
        reasons = {line: json.loads(m.value())["reason"] for line, m in dead.items()}
        assert reasons[mixed_lines[1].decode()].startswith("unknown-policy: ")
        assert reasons[mixed_lines[2].decode()].startswith("reward-id-mismatch: ")
        assert reasons[tampered.value.decode()].startswith("reward-not-attested: ")
        for index in (1, 2):  # each refused line carries its own attestation: it checks alone
            header = dict(dead[mixed_lines[index].decode()].headers())[attestation.HEADER]
            own = attestation.parse(header)
            covered = attestation.encode(json.loads(mixed_lines[index])["reward"])
            assert (own["index"], attestation.verify(own, topics.REWARDS.name, covered).signer) == (
                index,
                ORACLE.did,
            )
        # Both refused lines name the record they came from: the same offset.
        assert len({json.loads(dead[mixed_lines[i].decode()].value())["offset"] for i in (1, 2)}) == 1


async def test_batch_records_replayed_re_signed_by_an_outsider_or_malformed_pay_nothing_more(
    platform_settings: PlatformSettings, kafka_bootstrap: str
) -> None:
    """Produced straight onto the topic after a batch record settled: the same record again and its rewards in
    another order under a new statement pay nothing twice; a batch an outsider's key attested is refused line by
    line (role-not-held); a batch whose line is not JSON is refused whole; a reward sent beside them settles."""
    settings = LedgerSettings(
        consumer_group=unique_group("ledger-batch-replay"), seal_interval_ms=50, genesis_roles=TEST_ROLES
    )
    erin, frank, grace, mallory = (Keypair.generate() for _ in range(4))
    outsider_key, malformed_key = Keypair.generate().did, Keypair.generate().did
    paid = [signed_reward(erin, seq=1, amount=21), signed_reward(frank, seq=1, amount=22)]
    first, _ = _batch(Keypair.generate().did, paid)
    reordered, _ = _batch(Keypair.generate().did, paid[::-1])
    outsider, _ = _batch(outsider_key, [signed_reward(grace, seq=i) for i in (1, 2)], oracle=mallory)
    broken, broken_lines = _batch(malformed_key, [signed_reward(grace, seq=i) for i in (3, 4)])
    broken = replace(broken, value=b"\n".join([broken_lines[0], b"{not json"]))
    start = await end_offsets(kafka_bootstrap, topics.REWARDS.dlq)

    async with _ledger_with_test_policy(platform_settings, settings) as client:

        async def balances_are(erin_has: int, frank_has: int) -> bool:
            return (await _balance(client, erin), await _balance(client, frank)) == (erin_has, frank_has)

        producer = KafkaProducer(kafka_bootstrap, "ledger-batch-replay-test")
        try:
            await send(producer, [first])
            await until(lambda: balances_are(21, 22), "the first batch record")
            beside = signed_reward(erin, seq=2, amount=5)
            await send(producer, [first, reordered, outsider, broken, *reward_records([beside])])
        finally:
            producer.close()

        async def dead_letters() -> list[Any]:
            messages = await records_published_during(kafka_bootstrap, topics.REWARDS.dlq, start)
            return [m for m in messages if m.key().decode() in (outsider_key, malformed_key)]

        await until(lambda: balances_are(21 + 5, 22), "the reward sent beside them")
        await until(lambda: _count_at_least(dead_letters, 3), "the outsider's lines and the malformed record")
        assert await _balance(client, grace) == 0
        dead = [(m.key().decode(), json.loads(m.value())["reason"]) for m in await dead_letters()]
        assert sorted(key for key, _ in dead) == sorted([outsider_key, outsider_key, malformed_key])
        assert all(reason.startswith("role-not-held: ") for key, reason in dead if key == outsider_key)
        assert next(reason for key, reason in dead if key == malformed_key).startswith("malformed: ")


@asynccontextmanager
async def _ledger_with_test_policy(
    platform_settings: PlatformSettings, settings: LedgerSettings
) -> AsyncIterator[httpx.AsyncClient]:
    """A ledger running (its consumers and sealer) with the test policy on its chain, and a client of its API."""
    app = create_app(platform_settings, settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ledger") as client,
    ):
        assert (await client.post("/v1/policies", json=policy_publication())).status_code == 201
        yield client


async def _balance(client: httpx.AsyncClient, who: Keypair) -> int:
    """`who`'s CITY balance, read as `who`."""
    answer = await client.get(f"/v1/accounts/{who.did}", auth=SignedReadAuth(who))
    return answer.json()["balances"].get("CITY", 0)


def _batch(
    key: str, values: list[dict[str, Any]], oracle: Keypair = ORACLE
) -> tuple[OutgoingRecord, list[bytes]]:
    """A batch record of `values` as the rewards worker writes it (`reward_batch_records`), keyed `key`,
    attested by `oracle`; and its lines."""
    lines = [attestation.encode(v) for v in values]
    covered = [attestation.encode(v["reward"]) for v in values]
    return batch_record(oracle, topics.REWARDS, key, 0, lines, [], covered), lines


async def _count_at_least(read: Callable[[], Any], count: int) -> bool:
    return len(await read()) >= count
