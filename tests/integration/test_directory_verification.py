"""The city's verification of merchants on a real broker and PostgreSQL: who may verify, what it binds to,
what survives an update, and the facts published to city.merchants.v1; and the seed command."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from services.cli import app as cli
from services.common import attestation, db, embedded, schemas, signing
from services.common.kafka import KafkaProducer
from services.common.settings import PlatformSettings
from services.common.signing import Keypair, b64url_encode
from services.common.topics import MERCHANTS
from services.directory import merchants, synthetic
from services.directory.app import create_app
from services.directory.publishing import MerchantPublisher
from services.directory.seed import seed
from services.directory.settings import SERVICE, DirectorySettings
from services.directory.store import MerchantStore
from tests.support.asgi import assert_problem, running
from tests.support.factories import DIRECTORY
from tests.support.topics import end_offsets, records_published_during

CITY = Keypair.generate()


def _registration(key: Keypair, **overrides) -> dict:
    body = {
        "wallet": key.did,
        "name": "Corner Grocer",
        "category": "grocery",
        "locally_owned": True,
        "accepts": ["CITY", "AID"],
        "lat": 52.37,
        "lon": 4.9,
        "hours": {"mon": ["08:00-18:00"]},
        **overrides,
    }
    return key.sign(body)


def _verification(
    key: Keypair, signed: dict, *, by: Keypair = CITY, at: str = "2026-11-21T10:00:00Z", **found
):
    return by.sign(
        {
            "merchant": key.did,
            "registration": merchants.registration_hash(signed),
            "category": found.get("category", signed["category"]),
            "locally_owned": found.get("locally_owned", signed["locally_owned"]),
            "verified_at": at,
            "verifier": by.did,
        }
    )


async def test_verification_by_the_city_is_published_and_survives_only_unchanged_claims(
    platform_settings: PlatformSettings,
):
    shop = Keypair.generate()
    bootstrap = platform_settings.bootstrap_servers
    app = create_app(platform_settings, DirectorySettings(verifier_keys=[CITY.did]))
    async with running(app) as client:
        start = await end_offsets(bootstrap, MERCHANTS)
        signed = _registration(shop)
        assert (await client.post("/v1/merchants", json=signed)).status_code == 201
        url = f"/v1/merchants/{shop.did}/verification"

        impostor = Keypair.generate()
        assert_problem(await client.post(url, json=_verification(shop, signed, by=impostor)), 403)
        forged = {**_verification(shop, signed), "locally_owned": False}
        assert_problem(await client.post(url, json=forged), 400)
        other = Keypair.generate()
        misdirected = await client.post(
            f"/v1/merchants/{other.did}/verification", json=_verification(shop, signed)
        )
        assert_problem(misdirected, 422)
        stale = _verification(shop, _registration(shop, name="Old Name"))
        assert_problem(await client.post(url, json=stale), 409)
        naive = {**signing.unsigned(_verification(shop, signed)), "verified_at": "2026-11-21T10:00:00"}
        assert_problem(await client.post(url, json=CITY.sign(naive)), 422)
        assert (await client.get(f"/v1/merchants/{shop.did}")).json()["verified"] is False

        # The city finds it is a franchise of a chain, in fact: its findings are what is published.
        verified = await client.post(url, json=_verification(shop, signed, locally_owned=False))
        assert verified.status_code == 200, verified.text
        assert verified.json()["verified"] is True and verified.json()["locally_owned"] is False
        replay = _verification(shop, signed, at="2026-11-21T09:00:00Z")
        assert_problem(await client.post(url, json=replay), 409)

        renamed = _registration(shop, name="Corner Grocer & Deli", issued_at="2026-11-21T11:00:00Z")
        kept = (await client.post("/v1/merchants", json=renamed)).json()
        assert (
            kept["verified"] is True
            and kept["locally_owned"] is False
            and kept["name"] == "Corner Grocer & Deli"
        )
        replayed = await client.post("/v1/merchants", json=signed)  # the first, untimed registration again
        assert_problem(replayed, 409)
        assert_problem(
            await client.post("/v1/merchants", json=_registration(shop, issued_at="2026-11-21T10:59Z")), 409
        )
        recategorised = _registration(
            shop, name="Corner Grocer & Deli", category="food", issued_at="2026-11-21T12:00:00Z"
        )
        dropped = (await client.post("/v1/merchants", json=recategorised)).json()
        assert dropped["verified"] is False and "verification" not in dropped
        assert dropped["category"] == "food" and dropped["locally_owned"] is True
        published = await records_published_during(bootstrap, MERCHANTS, start)

    facts = [
        json.loads(m.value())
        for m in sorted(published, key=lambda m: m.offset())
        if m.key() == shop.did.encode()
    ]
    assert [(f["verified"], f["category"], f["locally_owned"]) for f in facts] == [
        (False, "grocery", True),
        (True, "grocery", False),
        (True, "grocery", False),
        (False, "food", True),
    ]
    for fact in facts:
        schemas.validate(MERCHANTS, fact)
        signing.verify(fact["registration"], "wallet")
    verification = facts[1]["verification"]
    signing.verify(verification, "verifier")
    assert verification["verifier"] == CITY.did
    assert verification["registration"] == merchants.registration_hash(facts[1]["registration"])
    assert facts[1]["hours"] == {"mon": ["08:00-18:00"]}


async def test_nobody_can_verify_without_the_role_configured(platform_settings: PlatformSettings):
    shop = Keypair.generate()
    async with running(create_app(platform_settings, DirectorySettings(verifier_keys=[]))) as client:
        signed = _registration(shop)
        await client.post("/v1/merchants", json=signed)
        response = await client.post(
            f"/v1/merchants/{shop.did}/verification", json=_verification(shop, signed)
        )
        assert_problem(response, 403)
        assert_problem(await client.post(f"/v1/merchants/{shop.did}/verification", content=b"{"), 400)


async def test_seed_stores_and_publishes_a_synthetic_city(platform_settings: PlatformSettings):
    bootstrap = platform_settings.bootstrap_servers
    url = await db.prepare_database(platform_settings, SERVICE)
    engine = db.create_engine(url, pool_size=1)
    producer = KafkaProducer(bootstrap, "test-seed", platform_settings.kafka_send_timeout_s)
    start = await end_offsets(bootstrap, MERCHANTS)
    try:
        store = MerchantStore(engine)
        publisher = MerchantPublisher(producer, DIRECTORY)
        assert await seed(store, publisher, 60, seed=7, verifier=CITY) == 60
        assert await seed(store, publisher, 60, seed=7, verifier=CITY) == 60  # the same city again: replaced
        page, total = await store.page(200, 0)
    finally:
        producer.close()
        await engine.dispose()
    assert total == 60
    assert {m.wallet for m in page} == {synthetic.merchant_key(7, i).did for i in range(60)}
    assert any(m.chain for m in page) and any(m.locally_owned and m.verified for m in page)
    published = await records_published_during(bootstrap, MERCHANTS, start)
    assert len(published) == 120 and {m.key().decode() for m in published} == {m.wallet for m in page}
    for message in published:  # each attested by the directory's key, which the ledger checks
        header = dict(message.headers())[attestation.HEADER]
        assert attestation.verify_header(header, MERCHANTS.name, message.value()).signer == DIRECTORY.did


def test_the_seed_command(platform_settings: PlatformSettings):
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": platform_settings.bootstrap_servers,
        "DATABASE_URL": platform_settings.database_url,
        "DATABASE_PREFIX": platform_settings.database_prefix,
        "DIRECTORY_VERIFIER_KEYS": json.dumps([CITY.did]),
    }
    command = ["directory", "seed", "--count", "25", "--verifier-seed", b64url_encode(CITY.seed)]
    result = CliRunner().invoke(cli, command, env=env)
    assert result.exit_code == 0, result.output
    assert "seeded 25 merchants and published them" in result.output
    assert "does not list" not in result.output
    refused = CliRunner().invoke(cli, ["directory", "seed", "--count", "0"], env=env)
    assert refused.exit_code != 0


async def test_a_verification_the_broker_did_not_acknowledge_is_not_stored(
    platform_settings: PlatformSettings,
):
    shop = Keypair.generate()
    settings = DirectorySettings(verifier_keys=[CITY.did])
    unreachable = platform_settings.model_copy(
        update={"kafka_bootstrap_servers": f"127.0.0.1:{embedded.free_port()}", "kafka_send_timeout_s": 1.0}
    )
    async with running(create_app(platform_settings, settings)) as client:
        signed = _registration(shop)
        assert (await client.post("/v1/merchants", json=signed)).status_code == 201
        async with running(create_app(unreachable, settings)) as cut_off:
            response = await cut_off.post(
                f"/v1/merchants/{shop.did}/verification", json=_verification(shop, signed)
            )
            assert_problem(response, 503)
            assert int(response.headers["retry-after"]) > 0
        held = (await client.get(f"/v1/merchants/{shop.did}")).json()
        assert held["verified"] is False and "verification" not in held
