"""city.bindings.v1 on the real broker: a binding view (what ingest asks) re-verifies every record, refuses
and dead-letters forged, replayed and malformed ones while the good record beside them applies; and ingest
names the bound person in the readings envelope it attests."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from prometheus_client import REGISTRY

from services.common import attestation, events
from services.common.bindings import binding_request
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.common.topics import BINDINGS, READINGS
from services.ingest.app import create_app
from services.rewards.readings import parse
from tests.integration.test_poison_records import dlq_entry, produce
from tests.support import consents, ingest
from tests.support.asgi import running
from tests.support.bindings import bind, binding_record, binding_view, resident_credential
from tests.support.topics import device_of, end_offsets, records_published_during, unique_group
from tests.support.waiting import holds, until

ISSUER = Keypair.generate()


def refused(client: str) -> float:
    value = REGISTRY.get_sample_value(
        "smartcity_binding_records_total", {"client": client, "outcome": "refused"}
    )
    return value or 0.0


def raw(key: str, value: object) -> tuple[bytes, bytes, list]:
    return key.encode(), value if isinstance(value, bytes) else events.encode_json(value), []


async def test_forged_replayed_and_malformed_binding_records_are_dead_lettered_and_the_good_one_applies(
    kafka_bootstrap: str,
) -> None:
    alice, bob, mallory, good_wallet = (Keypair.generate() for _ in range(4))
    alices = binding_record(ISSUER, alice)
    # Forged: Mallory binds Bob's wallet to a credential of Alice's, making the key binding with her own key.
    forged = binding_request(resident_credential(ISSUER, alice.did), mallory, bob, datetime.now(UTC))
    forged_record = {**alices, "wallet": bob.did, "binding": forged}
    # Replayed: Alice's presentation, lifted from her record into one for Bob's wallet (signed by Bob).
    lifted = bob.sign({**{k: v for k, v in alices["binding"].items() if k != "sig"}, "wallet": bob.did})
    replayed_record = {**alices, "wallet": bob.did, "binding": lifted}
    # Claims another person than the credential's; issued by a key the view does not trust; not JSON.
    other_person = {**binding_record(ISSUER, bob), "person": "0" * 64}
    untrusted = binding_record(Keypair.generate(), bob)
    poison = [
        (forged_record, "presentation-key-binding"),
        (replayed_record, "presentation-wrong-nonce"),
        (other_person, "mismatch"),
        (untrusted, "presentation-untrusted-issuer"),
        (b"{not json", "malformed JSON"),
        ({"wallet": bob.did}, "malformed"),
    ]
    client = unique_group("test-binding-view")
    since = await end_offsets(kafka_bootstrap, BINDINGS.dlq)
    async with binding_view(kafka_bootstrap, ISSUER.did, client) as view:
        before = refused(client)
        keys = [f"{bob.did}/{i}" for i in range(len(poison))]
        good = binding_record(ISSUER, good_wallet)
        placed = await produce(
            kafka_bootstrap,
            BINDINGS,
            [raw(key, value) for key, (value, _) in zip(keys, poison, strict=True)]
            + [raw(good_wallet.did, good)],
        )
        await until(holds(lambda: view.person_of(good_wallet.did) == good["person"]), "the good binding")
        assert view.person_of(bob.did) is None  # none of the bad records bound Bob's wallet
        await until(holds(lambda: refused(client) - before == len(poison)), "every bad record refused")
        for key, (partition, offset), (_, reason) in zip(keys, placed, poison, strict=False):
            entry, _ = await dlq_entry(kafka_bootstrap, BINDINGS, since, key, client)
            assert entry["reason"].startswith(reason), entry["reason"]
            assert (entry["source_topic"], entry["partition"], entry["offset"]) == (
                BINDINGS.name,
                partition,
                offset,
            )
        # A replay of the good record itself changes nothing; a later binding of the wallet does not win.
        later = binding_record(ISSUER, good_wallet)
        await produce(kafka_bootstrap, BINDINGS, [raw(good_wallet.did, good), raw(good_wallet.did, later)])
        await until(holds(lambda: view.records_folded >= 3), "the replays folded")
        await asyncio.sleep(0.5)
        assert view.person_of(good_wallet.did) == good["person"]
        assert view.healthy()


async def test_ingest_names_the_bound_person_in_the_envelope_it_attests(platform_settings: PlatformSettings):
    owner, device = Keypair.generate(), Keypair.generate()
    bootstrap = platform_settings.bootstrap_servers
    app = create_app(platform_settings)
    start = await end_offsets(bootstrap, READINGS)
    async with running(app) as client:
        assert (await client.post("/v1/devices", json=ingest.registration(owner, device))).status_code == 201
        await consents.grant(bootstrap, owner, app)
        unbound = await client.post("/v1/readings", json={"readings": [ingest.reading(device, 1)]})
        assert unbound.json()["results"][0]["status"] == "accepted", unbound.text
        person = await bind(bootstrap, platform_settings.data_dir, owner, app)
        bound = await client.post("/v1/readings", json={"readings": [ingest.reading(device, 2)]})
        assert bound.json()["results"][0]["status"] == "accepted", bound.text
        ready = (await client.get("/readyz")).json()
        assert ready["checks"]["bindings"], ready

    async def mine() -> list | None:
        published = await records_published_during(bootstrap, READINGS, start)
        found = [m for m in published if device_of(m) == device.did]
        return found if len(found) == 2 else None

    first, second = sorted(
        await until(mine, "both readings"), key=lambda m: json.loads(m.value())["reading"]["seq"]
    )
    assert "person" not in json.loads(first.value())
    assert json.loads(second.value())["person"] == person
    # Ingest's attestation covers the person: rewards accepts the envelope as attested, person and all.
    attestor = app.state.pipeline.attestor.did
    header = dict(second.headers())[attestation.HEADER]
    assert parse(second.value(), header, [attestor]).person == person
