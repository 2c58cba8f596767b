"""Peer-to-peer transfers, issuer commands and AID on the real broker and PostgreSQL: every rule and its
rejection, merchants folded from ``city.merchants.v1``, AID expiry, concurrent transfers over two ledger
processes, and the verifier on a good and on a tampered chain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.common import topics
from services.common.aid_holder import aid_holder
from services.common.events import cloudevent_headers, now_rfc3339
from services.common.kafka import KafkaProducer, OutgoingRecord, attested
from services.common.settings import PlatformSettings
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair, b64url_encode
from services.ledger.app import create_app
from services.ledger.replay import Discrepancy
from services.ledger.settings import LedgerSettings
from services.ledger.verifier import verify_ledger
from tests.support.asgi import assert_problem
from tests.support.factories import AS_AUDITOR, AUDITOR, DIRECTORY, TEST_ROLES, reencoded
from tests.support.topics import did_of, keypairs_on_one_partition, unique_group, values_with_keys
from tests.support.waiting import until

pytestmark = pytest.mark.integration


class Issuer:
    """Signs issuer commands with increasing nonces."""

    def __init__(self) -> None:
        self.key = Keypair.generate()
        self.nonce = 0

    def command(self, command: str, **args: Any) -> dict[str, Any]:
        self.nonce += 1
        return self.key.sign({"command": command, "issuer": self.key.did, "nonce": self.nonce, **args})


def transfer(sender: Keypair, to: str, amount: int, nonce: int, currency: str = "CITY") -> dict[str, Any]:
    return sender.sign({"from": sender.did, "to": to, "amount": amount, "currency": currency, "nonce": nonce})


def in_seconds(seconds: float) -> str:
    return (
        (datetime.now(UTC) + timedelta(seconds=seconds))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@asynccontextmanager
async def ledgers(
    platform: PlatformSettings, issuer: Issuer, count: int = 1
) -> AsyncIterator[tuple[list[httpx.AsyncClient], str]]:
    """`count` ledger apps on one database and one key (as several processes would be), and the key."""
    key = Keypair.generate()
    settings = LedgerSettings(
        signing_key=SecretStr(b64url_encode(key.seed)),
        consumer_group=unique_group("ledger-transfers"),
        seal_interval_ms=50,
        issuer_keys=issuer.key.did,
        aid_expiry_interval_s=0.2,
        verify_workers=0,
        genesis_roles=TEST_ROLES,
    )
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(count):
            app = create_app(platform, settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ledger")
            clients.append(await stack.enter_async_context(client))
        yield clients, key.did


async def balance(client: httpx.AsyncClient, wallet: str, currency: str = "CITY") -> int:
    return (await client.get(f"/v1/accounts/{wallet}", auth=AS_AUDITOR)).json()["balances"][currency]


async def command(client: httpx.AsyncClient, signed: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/issuer/commands", json=signed)
    assert response.status_code == 201, response.text
    return response.json()


def merchant_value(
    wallet: Keypair, category: str, *, locally_owned: bool, accepts: list[str], **facts: Any
) -> dict[str, Any]:
    """A city.merchants.v1 value, as the directory publishes it for a verified merchant."""
    registration = wallet.sign(
        {
            "wallet": wallet.did,
            "name": f"shop {category}",
            "category": category,
            "locally_owned": locally_owned,
            "accepts": accepts,
        }
    )
    return {
        **{k: v for k, v in registration.items() if k != "sig"},
        "verified": True,
        "active": True,
        "updated_at": now_rfc3339(),
        "registration": registration,
        **facts,
    }


async def send_merchants(
    bootstrap: str, values: list[dict[str, Any]], attestor: Keypair | None = DIRECTORY
) -> None:
    """Publish merchants values to city.merchants.v1, attested by `attestor` (None: not attested)."""
    records = [
        OutgoingRecord(
            topics.MERCHANTS, v["wallet"], v, cloudevent_headers("city.merchant.v1", "tests", v["wallet"])
        )
        for v in values
    ]
    producer = KafkaProducer(bootstrap, "test-directory")
    try:
        sent = records if attestor is None else attested(attestor, records)
        assert await producer.send_batch(sent) == [None] * len(sent)
    finally:
        producer.close()


async def publish_merchant(
    bootstrap: str, wallet: Keypair, category: str, *, locally_owned: bool, accepts: list[str]
) -> None:
    """Publish a verified merchant as the directory does."""
    value = merchant_value(wallet, category, locally_owned=locally_owned, accepts=accepts)
    await send_merchants(bootstrap, [value])


async def test_transfer_rules_issuer_commands_and_aid(
    platform_settings: PlatformSettings, kafka_bootstrap: str
) -> None:
    issuer = Issuer()
    alice, bob, local_food, chain_store = (Keypair.generate() for _ in range(4))
    await publish_merchant(kafka_bootstrap, local_food, "food", locally_owned=True, accepts=["CITY", "AID"])
    await publish_merchant(
        kafka_bootstrap, chain_store, "grocery", locally_owned=False, accepts=["CITY", "AID"]
    )
    async with ledgers(platform_settings, issuer) as ([client], ledger_key):
        store = client._transport.app.state.store  # type: ignore[attr-defined]

        async def merchants_folded() -> bool:
            async with store.connection() as conn:
                # Other tests' merchants may be on the topic too: look for these two.
                wallets = [local_food.did, chain_store.did]
                return (
                    await conn.fetchval("SELECT count(*) FROM merchants WHERE wallet = ANY($1)", wallets) == 2
                )

        await until(merchants_folded, "the merchants to be folded from city.merchants.v1")

        # Only issuer keys may issue; commands are signed.
        outsider = Issuer()
        assert_problem(
            await client.post(
                "/v1/issuer/commands", json=outsider.command("mint", to=alice.did, currency="CITY", amount=5)
            ),
            403,
        )
        await command(client, issuer.command("mint", to=alice.did, currency="CITY", amount=1000))
        await command(client, issuer.command("mint", to=alice.did, currency="CREDIT", amount=50))
        assert await balance(client, alice.did) == 1000

        # A transfer; its retry returns the original receipt; its nonce cannot be reused or go back.
        first = transfer(alice, bob.did, 100, nonce=1)
        created = await client.post("/v1/transfers", json=first)
        assert created.status_code == 201, created.text
        retry = await client.post("/v1/transfers", json=first)
        assert retry.status_code == 200 and retry.json()["tx_id"] == created.json()["tx_id"]
        assert assert_problem(
            await client.post("/v1/transfers", json=transfer(alice, bob.did, 5, nonce=1)), 409
        )["type"].endswith("nonce-reused")
        assert (
            await client.post("/v1/transfers", json=transfer(alice, bob.did, 5, nonce=3))
        ).status_code == 201
        stale = assert_problem(
            await client.post("/v1/transfers", json=transfer(alice, bob.did, 5, nonce=2)), 409
        )
        assert "stale-nonce" in stale["type"]

        # Signature, funds, schema, self-transfer.
        forged = {**transfer(bob, alice.did, 1, nonce=1), "from": alice.did, "to": bob.did, "nonce": 10}
        assert "bad-signature" in assert_problem(await client.post("/v1/transfers", json=forged), 400)["type"]
        broke = assert_problem(
            await client.post("/v1/transfers", json=transfer(bob, alice.did, 10_000, 1)), 409
        )
        assert "insufficient-funds" in broke["type"]
        no_sig = {k: v for k, v in transfer(alice, bob.did, 1, 11).items() if k != "sig"}
        assert_problem(await client.post("/v1/transfers", json=no_sig), 422)
        assert_problem(await client.post("/v1/transfers", json=transfer(alice, alice.did, 1, 12)), 422)

        # CITY stays in the community: not to a merchant that is not locally owned; merchants' currencies.
        outside = assert_problem(
            await client.post("/v1/transfers", json=transfer(alice, chain_store.did, 5, 13)), 403
        )
        assert "city-outside-community" in outside["type"]
        assert (
            await client.post("/v1/transfers", json=transfer(alice, local_food.did, 5, 14))
        ).status_code == 201
        credit = transfer(alice, local_food.did, 5, 15, currency="CREDIT")
        assert (
            "currency-not-accepted"
            in assert_problem(await client.post("/v1/transfers", json=credit), 403)["type"]
        )

        # Frozen accounts neither pay nor get paid, until unfrozen.
        await command(client, issuer.command("freeze", account=bob.did))
        assert (
            "account-frozen"
            in assert_problem(await client.post("/v1/transfers", json=transfer(alice, bob.did, 1, 16)), 403)[
                "type"
            ]
        )
        await command(client, issuer.command("unfreeze", account=bob.did))
        assert (await client.post("/v1/transfers", json=transfer(alice, bob.did, 1, 17))).status_code == 201
        assert await balance(client, alice.did) == 1000 - 100 - 5 - 5 - 1
        assert await balance(client, bob.did) == 106

        # AID: granted out of the aid pool to a person's AID holder key, never to their wallet (a grant to an
        # account that held another currency is refused), spent only at merchants of the allowed categories.
        await command(client, issuer.command("fund", pool="aid", currency="AID", amount=10_000))
        to_wallet = issuer.command(
            "grant", holder=alice.did, amount=500, categories=["food"], expires_at=in_seconds(3600)
        )
        refused = assert_problem(await client.post("/v1/issuer/commands", json=to_wallet), 422)
        assert refused["type"].endswith("/holder-is-a-wallet")
        alice_aid, bob_aid = aid_holder(alice), aid_holder(bob)
        grant = await command(
            client,
            issuer.command(
                "grant", holder=alice_aid.did, amount=500, categories=["food"], expires_at=in_seconds(3600)
            ),
        )
        # A grant holder moves AID alone: CITY to it, or from it, is refused.
        city_to_holder = transfer(alice, alice_aid.did, 1, 18)
        refused = assert_problem(await client.post("/v1/transfers", json=city_to_holder), 422)
        assert refused["type"].endswith("/aid-holder-aid-only")
        city_from_holder = transfer(alice_aid, bob.did, 1, 1)
        assert_problem(await client.post("/v1/transfers", json=city_from_holder), 422)
        assert await balance(client, alice_aid.did, "AID") == 500
        to_person = transfer(alice_aid, bob.did, 10, 2, currency="AID")
        assert (
            "aid-merchants-only"
            in assert_problem(await client.post("/v1/transfers", json=to_person), 403)["type"]
        )
        wrong_kind = transfer(alice_aid, chain_store.did, 10, 3, currency="AID")
        assert (
            "aid-not-allowed"
            in assert_problem(await client.post("/v1/transfers", json=wrong_kind), 403)["type"]
        )
        spend = await client.post(
            "/v1/transfers", json=transfer(alice_aid, local_food.did, 200, 4, currency="AID")
        )
        assert spend.status_code == 201, spend.text
        too_much = transfer(alice_aid, local_food.did, 400, 5, currency="AID")
        assert (
            "insufficient-aid"
            in assert_problem(await client.post("/v1/transfers", json=too_much), 409)["type"]
        )
        record = (await client.get(f"/v1/transactions/{spend.json()['tx_id']}")).json()
        assert record["aid_draws"] == [{"grant_id": grant["tx_id"], "amount": 200}]

        # Revoking returns the unspent rest; expiry does so by itself.
        await command(client, issuer.command("revoke", grant_id=grant["tx_id"]))
        assert await balance(client, alice_aid.did, "AID") == 0
        assert (
            "unknown-grant"
            in assert_problem(
                await client.post(
                    "/v1/issuer/commands", json=issuer.command("revoke", grant_id=grant["tx_id"])
                ),
                404,
            )["type"]
        )
        await command(
            client,
            issuer.command(
                "grant", holder=bob_aid.did, amount=70, categories=["food"], expires_at=in_seconds(6)
            ),
        )
        assert await balance(client, bob_aid.did, "AID") == 70

        async def expired() -> bool:
            return await balance(client, bob_aid.did, "AID") == 0

        await until(expired, "the expired grant to return to the aid pool")
        assert await balance(client, "city:aid-pool", "AID") == 10_000 - 200
        history = (
            await client.get(f"/v1/accounts/{bob_aid.did}/transactions", auth=SignedReadAuth(bob_aid))
        ).json()["transactions"]
        assert history[0]["type"] == "aid-expiry" and history[0]["changes"] == {"AID": -70}

        # Everything is on a verifiable chain whose replay gives the API's balances.
        async def all_sealed() -> bool:
            async with store.connection() as conn:
                return await conn.fetchval("SELECT count(*) FROM pending") == 0

        await until(all_sealed, "everything to be sealed")
        report = await verify_ledger(client, ledger_key, replay=True, auditor=AUDITOR)
        assert report.accounts_compared >= 6 and report.transactions_checked == report.tree_size


async def test_concurrent_transfers_over_two_ledgers_never_overspend_nor_fork(
    platform_settings: PlatformSettings,
) -> None:
    issuer = Issuer()
    alice, bob = Keypair.generate(), Keypair.generate()
    async with ledgers(platform_settings, issuer, count=2) as (clients, ledger_key):
        await command(clients[0], issuer.command("mint", to=alice.did, currency="CITY", amount=1000))
        transfers = [transfer(alice, bob.did, 100, nonce) for nonce in range(1, 51)]
        responses = await asyncio.gather(
            *(clients[i % 2].post("/v1/transfers", json=t) for i, t in enumerate(transfers))
        )
        accepted = [r for r in responses if r.status_code == 201]
        assert all(r.status_code in (201, 409) for r in responses), [r.text for r in responses]
        assert 1 <= len(accepted) <= 10
        assert len({r.json()["tx_id"] for r in accepted}) == len(accepted)
        for client in clients:
            assert await balance(client, alice.did) == 1000 - 100 * len(accepted)
            assert await balance(client, bob.did) == 100 * len(accepted)

        store = clients[0]._transport.app.state.store  # type: ignore[attr-defined]

        async def all_sealed() -> bool:
            async with store.connection() as conn:
                return await conn.fetchval("SELECT count(*) FROM pending") == 0

        await until(all_sealed, "everything to be sealed")
        # Both processes sealed into one chain: every block links to the one before, both serve it.
        for client in clients:
            report = await verify_ledger(client, ledger_key, replay=True)
            assert report.tree_size == 3 + len(accepted)  # genesis, authority bootstrap, mint, transfers

        # A database row changed behind the ledger's back: the verifier names it.
        tx_id = accepted[-1].json()["tx_id"]
        async with store.connection() as conn:
            await conn.execute(
                "UPDATE transactions SET record = convert_to(replace(convert_from(record, 'UTF8'), "
                "'\"amount\":100', '\"amount\":1'), 'UTF8') WHERE tx_id = $1",
                tx_id,
            )
        with pytest.raises(Discrepancy, match=f"transaction {tx_id}"):
            await verify_ledger(clients[1], ledger_key)


async def test_a_float_nonce_and_a_reencoded_signature_are_refused_and_the_original_keeps_its_receipt(
    platform_settings: PlatformSettings,
) -> None:
    issuer = Issuer()
    alice, bob = Keypair.generate(), Keypair.generate()
    async with ledgers(platform_settings, issuer) as ([client], _ledger_key):
        await command(client, issuer.command("mint", to=alice.did, amount=1_000, currency="CREDIT"))
        # 200.0 would verify (JCS writes it as 200) yet name another tx_id ('<from>/200.0').
        floated = transfer(alice, bob.did, 10, 200.0, "CREDIT")
        problem = assert_problem(await client.post("/v1/transfers", json=floated), 422)
        assert "nonce" in str(problem)
        good = transfer(alice, bob.did, 10, 200, "CREDIT")
        first = await client.post("/v1/transfers", json=good)
        assert first.status_code == 201, first.text
        assert_problem(await client.post("/v1/transfers", json=reencoded(good)), 400)
        again = await client.post("/v1/transfers", json=good)
        assert again.status_code == 200 and again.json()["tx_id"] == first.json()["tx_id"]
        assert await balance(client, alice.did, "CREDIT") == 990
        assert await balance(client, bob.did, "CREDIT") == 10


async def test_the_next_nonce_is_a_signed_read_of_the_holder_or_an_auditor(
    platform_settings: PlatformSettings,
) -> None:
    issuer = Issuer()
    alice, bob, stranger = Keypair.generate(), Keypair.generate(), Keypair.generate()
    async with ledgers(platform_settings, issuer) as ([client], _ledger_key):
        path = f"/v1/accounts/{alice.did}/nonce"
        before = await client.get(path, auth=SignedReadAuth(alice))
        assert before.status_code == 200, before.text
        assert before.json() == {"wallet": alice.did, "last_nonce": 0, "next_nonce": 1}

        await command(client, issuer.command("mint", to=alice.did, amount=1_000, currency="CREDIT"))
        for nonce in (1, 5):  # nonces need only increase: the next is the last one + 1, not the count + 1
            paid = await client.post("/v1/transfers", json=transfer(alice, bob.did, 10, nonce, "CREDIT"))
            assert paid.status_code == 201, paid.text
        for reader in (alice, AUDITOR):
            answer = await client.get(path, auth=SignedReadAuth(reader))
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"wallet": alice.did, "last_nonce": 5, "next_nonce": 6}
        nonce = (await client.get(path, auth=SignedReadAuth(alice))).json()["next_nonce"]
        paid = await client.post("/v1/transfers", json=transfer(alice, bob.did, 10, nonce, "CREDIT"))
        assert paid.status_code == 201, paid.text

        # How often someone pays is personal: a stranger is refused, an unsigned read asked to sign.
        assert assert_problem(await client.get(path, auth=SignedReadAuth(stranger)), 403)["type"].endswith(
            "/read-forbidden"
        )
        assert assert_problem(await client.get(path), 401)["type"].endswith("/signature-required")


async def test_merchant_facts_count_only_when_a_merchant_verifier_attests_them_with_a_real_date(
    platform_settings: PlatformSettings, kafka_bootstrap: str
) -> None:
    issuer = Issuer()
    alice, mallory = Keypair.generate(), Keypair.generate()
    # The topic has several partitions: the marker tells the others were judged only on their partition.
    grocer, ghost, clinic = keypairs_on_one_partition(topics.MERCHANTS, [did_of] * 3)
    await publish_merchant(kafka_bootstrap, grocer, "grocery", locally_owned=True, accepts=["CITY", "AID"])
    # An outsider with write access to the topic: a "verified grocery" for a wallet the directory never
    # heard of, unattested and attested by their own key; a forged closure of the real grocer dated 2099.
    fake = merchant_value(ghost, "grocery", locally_owned=True, accepts=["AID"])
    await send_merchants(kafka_bootstrap, [fake], attestor=None)
    await send_merchants(kafka_bootstrap, [fake], attestor=mallory)
    closure = {**merchant_value(grocer, "grocery", locally_owned=True, accepts=["AID"]), "active": False}
    await send_merchants(
        kafka_bootstrap, [{**closure, "updated_at": "2099-01-01T00:00:00Z"}], attestor=mallory
    )
    # Even the directory's own key cannot date a record in the future, nor on an impossible day.
    await send_merchants(kafka_bootstrap, [{**closure, "updated_at": "2099-01-01T00:00:00Z"}])
    await send_merchants(kafka_bootstrap, [{**closure, "updated_at": "2026-99-99T99:99:99Z"}])
    # A marker after them, so once it is folded the forged records have been judged.
    await publish_merchant(kafka_bootstrap, clinic, "health", locally_owned=True, accepts=["AID"])
    async with ledgers(platform_settings, issuer) as ([client], _ledger_key):
        store = client._transport.app.state.store  # type: ignore[attr-defined]

        async def folded() -> bool:
            async with store.connection() as conn:
                return (
                    await conn.fetchval("SELECT count(*) FROM merchants WHERE wallet = $1", clinic.did) == 1
                )

        await until(folded, "the marker merchant to be folded")
        async with store.connection() as conn:
            assert await conn.fetchval("SELECT count(*) FROM merchants WHERE wallet = $1", ghost.did) == 0
            assert await conn.fetchval("SELECT active FROM merchants WHERE wallet = $1", grocer.did) is True
        await command(client, issuer.command("fund", pool="aid", currency="AID", amount=1000))
        grant = issuer.command(
            "grant", holder=alice.did, amount=100, categories=["grocery"], expires_at=in_seconds(3600)
        )
        await command(client, grant)
        refused = assert_problem(
            await client.post("/v1/transfers", json=transfer(alice, ghost.did, 10, 1, "AID")), 403
        )
        assert "aid-merchants-only" in refused["type"]
        paid = await client.post("/v1/transfers", json=transfer(alice, grocer.did, 10, 2, "AID"))
        assert paid.status_code == 201, paid.text

    dlq = await values_with_keys(kafka_bootstrap, topics.MERCHANTS.dlq, {ghost.did, grocer.did}, 5)
    reasons = sorted(v["reason"].split(":")[0] for v in dlq)
    assert reasons == ["future-dated", "impossible-date", "role-not-held", "role-not-held", "unattested"]
