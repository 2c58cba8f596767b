"""A person's erasure removes their wallet's binding from city.bindings.v1, on the real broker and PostgreSQL:
identity writes the city key's signed unbinding and then a tombstone on the wallet's key; a following binding view
and a fresh one replaying the topic both forget the binding while another wallet's stays. A forged removal (a
bare tombstone, an unbinding by a key whose credentials do not bind, or one not signed by the key it names) is
refused and dead-lettered, and a replay of the erased binding does not bring it back."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from services.common import bindings, embedded
from services.common.bindings import binding_request, development_issuer
from services.common.events import now_rfc3339
from services.common.kafka import KafkaProducer, OutgoingRecord
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.common.topics import BINDINGS
from tests.integration.test_identity_api import identity_service, issue, register
from tests.integration.test_poison_records import dlq_entry
from tests.support.bindings import binding_view
from tests.support.topics import end_offsets, records_published_during, unique_group
from tests.support.waiting import holds, until

pytestmark = pytest.mark.integration


OUTCOMES = ("applied", "unbound", "tombstone", "void", "refused")


def outcomes(client: str) -> dict[str, float]:
    """How many records the view `client` folded, by outcome."""
    return {
        outcome: REGISTRY.get_sample_value(
            "smartcity_binding_records_total", {"client": client, "outcome": outcome}
        )
        or 0.0
        for outcome in OUTCOMES
    }


def since(client: str, before: dict[str, float]) -> dict[str, float]:
    """The view's outcomes since `before`, those that happened."""
    return {k: v - before[k] for k, v in outcomes(client).items() if v - before[k]}


async def test_an_erasure_unbinds_the_wallet_and_a_forged_removal_is_refused(
    platform_settings: PlatformSettings,
) -> None:
    bootstrap = platform_settings.bootstrap_servers
    # The city key of the data dir: identity signs credentials and unbindings with it.
    city = development_issuer(platform_settings.data_dir)
    alice, bob, mallory = (Keypair.generate() for _ in range(3))
    nowhere = f"http://127.0.0.1:{embedded.free_port()}"  # ingest and the ledger: identity's part alone here
    producer = KafkaProducer(bootstrap, "erasure-bindings-test")
    live = unique_group("test-unbinding-live")
    try:
        async with (
            identity_service(platform_settings, ingest_url=nowhere, ledger_url=nowhere) as (client, roles),
            binding_view(bootstrap, city, live) as view,
        ):
            before, start = outcomes(live), await end_offsets(bootstrap, BINDINGS)
            credentials = {}
            for person in (alice, bob):
                await register(client, person)
                credentials[person.did] = (await issue(client, roles, person.did))["sd_jwt"]
                request = binding_request(credentials[person.did], person, person, datetime.now(UTC))
                bound = await client.post("/v1/bindings", json=request)
                assert bound.status_code == 201, bound.text
            bound_records = {
                m.key().decode(): json.loads(m.value())
                for m in await records_published_during(bootstrap, BINDINGS, start)
            }
            alices, bobs = bound_records[alice.did], bound_records[bob.did]
            await until(
                holds(
                    lambda: (
                        (view.person_of(alice.did), view.person_of(bob.did))
                        == (alices["person"], bobs["person"])
                    )
                ),
                "both bindings in the view",
            )

            start = await end_offsets(bootstrap, BINDINGS)
            asked = await client.post(
                "/v1/erasures",
                json=alice.sign({"did": alice.did, "action": "erase", "issued_at": now_rfc3339()}),
            )
            assert asked.status_code == 202, (
                asked.text
            )  # identity's part done; ingest and the ledger are away
            assert asked.json()["completed"]["identity"]

            # On the topic: the city's signed unbinding of Alice's binding, naming no person, then a tombstone.
            published = [
                m
                for m in await records_published_during(bootstrap, BINDINGS, start)
                if m.key() == alice.did.encode()
            ]
            assert len(published) == 2, published
            unbinding, tombstone = json.loads(published[0].value()), published[1]
            assert tombstone.value() is None and tombstone.offset() > published[0].offset()
            assert set(unbinding) == {"wallet", "unbinding"} and "person" not in json.dumps(unbinding)
            assert unbinding["unbinding"]["issuer"] == city
            assert unbinding["unbinding"]["binding_id"] == bindings.binding_id(alices["binding"])

            # The view following the topic forgets Alice's binding; Bob's stays.
            await until(holds(lambda: view.person_of(alice.did) is None), "alice unbound in the live view")
            assert view.person_of(bob.did) == bobs["person"]
            # The tombstone comes after the unbinding: the view may not have folded it yet.
            expected = {"applied": 2, "unbound": 1, "tombstone": 1}
            await until(holds(lambda: since(live, before) == expected), "the tombstone folded")

            # A fresh view replaying the whole topic: the same.
            fresh = unique_group("test-unbinding-fresh")
            async with binding_view(bootstrap, city, fresh) as replayed:
                assert replayed.sync(10)
                assert replayed.person_of(alice.did) is None
                assert replayed.person_of(bob.did) == bobs["person"]

            # Forged removals of Bob's binding: a bare tombstone; an unbinding by Mallory's key; an unbinding naming
            # the city key but signed by Mallory. Each refused and dead-lettered; Bob stays bound.
            by_mallory = bindings.unbinding(mallory, bob.did, bobs["binding"], datetime.now(UTC))
            as_city = {**by_mallory, "unbinding": {**by_mallory["unbinding"], "issuer": city}}
            for forged, reason in (
                (None, bindings.UNSIGNED_REMOVAL),
                (by_mallory, bindings.UNTRUSTED_UNBINDER),
                (as_city, bindings.UNBINDING_SIGNATURE),
            ):
                dead = await end_offsets(bootstrap, BINDINGS.dlq)
                await producer.send(OutgoingRecord(BINDINGS, bob.did, forged))
                entry, _ = await dlq_entry(bootstrap, BINDINGS, dead, bob.did, live)
                assert entry["reason"].startswith(reason), entry["reason"]
            assert since(live, before)["refused"] == 3
            assert view.person_of(bob.did) == bobs["person"]

            # Alice's erased binding replayed onto the topic (anyone may have kept a copy): void, she stays unbound.
            await producer.send(OutgoingRecord(BINDINGS, alice.did, alices))
            await until(holds(lambda: since(live, before).get("void") == 1), "the replay seen as void")
            assert view.person_of(alice.did) is None

            # The unbinding named one binding: Alice may bind her wallet again with a new request, and it stands.
            again = binding_request(credentials[alice.did], alice, alice, datetime.now(UTC))
            assert (await client.post("/v1/bindings", json=again)).status_code == 201
            await until(holds(lambda: view.person_of(alice.did) == alices["person"]), "alice bound again")
            async with binding_view(bootstrap, city, unique_group("test-unbinding-after")) as replayed:
                assert replayed.sync(10)
                assert replayed.person_of(alice.did) == alices["person"]
                assert replayed.person_of(bob.did) == bobs["person"]
    finally:
        await asyncio.to_thread(producer.close)
