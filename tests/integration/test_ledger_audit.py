"""The chain as an auditor sees it, on the real broker and PostgreSQL: roles rotated by root-signed records
and obeyed by settlement, leaves and balances served in bulk, and a full replay that catches rows changed
behind the ledger's back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from typer.testing import CliRunner

from services.cli import app as cli
from services.common import embedded, merkle, topics
from services.common.kafka import KafkaProducer
from services.common.policy import parse_policy
from services.common.roles import Role
from services.common.settings import PlatformSettings
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair, b64url_encode
from services.ledger import chain
from services.ledger.app import create_app
from services.ledger.disclosures import DisclosureReads
from services.ledger.replay import Discrepancy
from services.ledger.settings import LedgerSettings
from services.ledger.verifier import verify_ledger
from tests.support.asgi import assert_problem
from tests.support.factories import (
    AS_AUDITOR,
    AUDITOR,
    ORACLE,
    TEST_POLICY,
    TEST_ROLES,
    policy_publication,
    reward_records,
    signed_reward,
)
from tests.support.topics import skip_to_the_end, unique_group, values_with_keys
from tests.support.waiting import until

pytestmark = pytest.mark.integration


class Root:
    """The city root key, signing authority commands with increasing nonces."""

    def __init__(self) -> None:
        self.key = Keypair.generate()
        self.nonce = 0

    def command(self, command: str, **args: Any) -> dict[str, Any]:
        self.nonce += 1
        return self.key.sign({"command": command, "root": self.key.did, "nonce": self.nonce, **args})


@asynccontextmanager
async def ledger(
    platform: PlatformSettings, root: Root, issuer: Keypair
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    key = Keypair.generate()
    settings = LedgerSettings(
        signing_key=SecretStr(b64url_encode(key.seed)),
        consumer_group=unique_group("ledger-audit"),
        seal_interval_ms=50,
        verify_workers=0,
        root_key=root.key.did,
        genesis_roles=TEST_ROLES,
        issuer_keys=issuer.did,
    )
    # A fresh group would otherwise settle what earlier tests left on the shared topics, sealing it after the
    # test's own records and changing the chain between two reads of it.
    for group, topic in (
        (settings.consumer_group, topics.REWARDS),
        (settings.merchants_group, topics.MERCHANTS),
    ):
        await skip_to_the_end(platform.bootstrap_servers, group, topic)
    app = create_app(platform, settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ledger") as client,
    ):
        yield client, key.did


async def sealed(client: httpx.AsyncClient, wallet: str, count: int) -> bool:
    items = (await client.get(f"/v1/accounts/{wallet}/transactions", auth=AS_AUDITOR)).json()["transactions"]
    return len(items) == count and all(i["leaf_index"] is not None for i in items)


async def all_sealed(client: httpx.AsyncClient) -> bool:
    store = client._transport.app.state.store  # type: ignore[attr-defined]
    async with store.connection() as conn:
        return await conn.fetchval("SELECT count(*) FROM pending") == 0


async def test_a_rotated_oracle_key_is_refused_after_its_rotation_and_the_verifier_agrees(
    platform_settings: PlatformSettings, kafka_bootstrap: str
) -> None:
    root, issuer = Root(), Keypair.generate()
    new_oracle = Keypair.generate()
    alice, bob = Keypair.generate(), Keypair.generate()
    producer = KafkaProducer(kafka_bootstrap, "audit-test")
    try:
        async with ledger(platform_settings, root, issuer) as (client, ledger_key):
            assert (await client.post("/v1/policies", json=policy_publication())).status_code == 201
            await producer.send_batch(reward_records([signed_reward(alice, seq=1, amount=10)]))
            await until(lambda: sealed(client, alice.did, 1), "the old oracle's reward before the rotation")

            # Only the root key in force changes authority.
            outsider = Root()
            forged = outsider.command("grant-role", role="rewards-oracle", key=outsider.key.did)
            assert_problem(await client.post("/v1/authority/commands", json=forged), 403)
            rotation = [
                root.command("grant-role", role="rewards-oracle", key=new_oracle.did),
                root.command("revoke-role", role="rewards-oracle", key=ORACLE.did),
            ]
            for command in rotation:
                response = await client.post("/v1/authority/commands", json=command)
                assert response.status_code == 201, response.text
            again = await client.post("/v1/authority/commands", json=rotation[0])
            assert again.status_code == 200  # the same signed command: its original receipt
            held = (await client.get("/v1/authority")).json()
            assert held["root"] == root.key.did
            assert held["roles"][Role.REWARDS_ORACLE] == [new_oracle.did]

            # After the rotation: the old key's reward is refused, the new key's settles.
            stale = signed_reward(bob, seq=1, amount=20)
            fresh = signed_reward(bob, seq=2, amount=30)
            await producer.send_batch(reward_records([stale]))
            await producer.send_batch(reward_records([fresh], oracle=new_oracle))
            await until(lambda: sealed(client, bob.did, 1), "the new oracle's reward")
            [dead] = await values_with_keys(kafka_bootstrap, topics.REWARDS.dlq, {bob.did}, 1)
            assert dead["reason"].startswith(f"role-not-held: {ORACLE.did}")
            assert (await client.get(f"/v1/accounts/{bob.did}", auth=AS_AUDITOR)).json()["balances"][
                "CITY"
            ] == 30

            # The root rotates itself; the old root can do nothing more.
            new_root = Root()
            rotate = root.command("rotate-root", new_root=new_root.key.did)
            assert (await client.post("/v1/authority/commands", json=rotate)).status_code == 201
            late = root.command("grant-role", role="issuer", key=root.key.did)
            assert_problem(await client.post("/v1/authority/commands", json=late), 403)

            await until(lambda: all_sealed(client), "everything to be sealed")
            report = await verify_ledger(client, ledger_key, replay=True)
            assert report.transactions_checked == report.tree_size
    finally:
        producer.close()


async def test_the_replay_catches_money_and_roles_changed_in_the_database(
    platform_settings: PlatformSettings,
) -> None:
    root, issuer = Root(), Keypair.generate()
    alice, bob, mallory = Keypair.generate(), Keypair.generate(), Keypair.generate()
    nonce = iter(range(1, 100))

    def command(signer: Keypair, name: str, **args: Any) -> dict[str, Any]:
        return signer.sign({"command": name, "issuer": signer.did, "nonce": next(nonce), **args})

    async with ledger(platform_settings, root, issuer) as (client, ledger_key):
        minted = await client.post(
            "/v1/issuer/commands", json=command(issuer, "mint", to=alice.did, currency="CREDIT", amount=500)
        )
        assert minted.status_code == 201, minted.text
        paid = alice.sign({"from": alice.did, "to": bob.did, "amount": 100, "currency": "CREDIT", "nonce": 1})
        assert (await client.post("/v1/transfers", json=paid)).status_code == 201
        await until(lambda: all_sealed(client), "everything to be sealed")
        report = await verify_ledger(client, ledger_key, replay=True, auditor=AUDITOR)
        assert report.accounts_compared >= 3
        # Without an auditor's key, the public totals: CREDIT held by alice and bob, all of what was minted.
        report = await verify_ledger(client, ledger_key, replay=True)
        assert report.totals_compared == 3
        totals = (await client.get("/v1/totals", params={"tree_size": report.tree_size})).json()["totals"]
        assert totals["CREDIT"] == {"held": 500, "accounts": 2}

        # Leaves in ranges: the exact bytes the signed root is computed from.
        checkpoint = chain.BlockHeader.from_json((await client.get("/v1/checkpoint")).json())
        body = (await client.get("/v1/leaves", params={"start": 0, "end": checkpoint.tree_size})).content
        leaves = body.split(b"\n")[:-1]
        assert merkle.root_from_leaf_hashes([merkle.leaf_hash(x) for x in leaves]) == checkpoint.root
        for params in ({"start": 0, "end": checkpoint.tree_size + 1}, {"start": 3, "end": 3}):
            assert_problem(await client.get("/v1/leaves", params=params), 400)
        assert_problem(await client.get("/v1/leaves", params={"start": -1, "end": 2}), 422)
        assert_problem(await client.get("/v1/balances", params={"tree_size": 2**70}, auth=AS_AUDITOR), 422)
        assert_problem(
            await client.get("/v1/balances", params={"tree_size": 1}), 401
        )  # balances are personal
        assert_problem(
            await client.get("/v1/balances", params={"tree_size": 1}, auth=SignedReadAuth(alice)), 403
        )

        store = client._transport.app.state.store  # type: ignore[attr-defined]
        # A role given in the database, not on the chain: the ledger takes mallory's mint...
        async with store.connection() as conn:
            await conn.execute("INSERT INTO roles (role, key) VALUES ('issuer', $1)", mallory.did)
        rogue = command(mallory, "mint", to=mallory.did, currency="CREDIT", amount=10**9)
        assert (await client.post("/v1/issuer/commands", json=rogue)).status_code == 201
        await until(lambda: all_sealed(client), "the rogue mint to be sealed")
        # ...and the verifier, which knows roles only from the chain, names it.
        with pytest.raises(Discrepancy, match=f"{mallory.did} did not hold the issuer role"):
            await verify_ledger(client, ledger_key, replay=True)


async def test_the_replay_catches_a_posting_multiplied_in_the_database(
    platform_settings: PlatformSettings,
) -> None:
    root, issuer = Root(), Keypair.generate()
    alice, bob = Keypair.generate(), Keypair.generate()
    async with ledger(platform_settings, root, issuer) as (client, ledger_key):
        mint = issuer.sign(
            {
                "command": "mint",
                "issuer": issuer.did,
                "nonce": 1,
                "to": alice.did,
                "currency": "CREDIT",
                "amount": 500,
            }
        )
        assert (await client.post("/v1/issuer/commands", json=mint)).status_code == 201
        paid = alice.sign({"from": alice.did, "to": bob.did, "amount": 100, "currency": "CREDIT", "nonce": 1})
        assert (await client.post("/v1/transfers", json=paid)).status_code == 201
        await until(lambda: all_sealed(client), "everything to be sealed")
        await verify_ledger(client, ledger_key, replay=True)

        store = client._transport.app.state.store  # type: ignore[attr-defined]
        async with store.connection() as conn:
            await conn.execute(
                "UPDATE postings SET amount = amount * 1000 WHERE account = $1 AND currency = 'CREDIT'",
                bob.did,
            )
            await conn.execute(
                "UPDATE balances SET balance = balance * 1000 WHERE account = $1 AND currency = 'CREDIT'",
                bob.did,
            )
        assert (await client.get(f"/v1/accounts/{bob.did}", auth=AS_AUDITOR)).json()["balances"][
            "CREDIT"
        ] == 100_000
        with pytest.raises(Discrepancy, match=f"account {bob.did}: the API says 100000 micro-CREDIT"):
            await verify_ledger(client, ledger_key, replay=True, auditor=AUDITOR)
        with pytest.raises(Discrepancy, match="CREDIT totals: the API says"):
            await verify_ledger(client, ledger_key, replay=True)


async def test_the_authority_command_signs_where_the_root_key_is_and_the_ledger_obeys(
    platform_settings: PlatformSettings,
) -> None:
    root, issuer = Root(), Keypair.generate()
    auditor = Keypair.generate()
    async with ledger(platform_settings, root, issuer) as (client, _ledger_key):
        app = client._transport.app  # type: ignore[attr-defined]
        port = embedded.free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
        )
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started:
                await asyncio.sleep(0.05)
            url = f"http://127.0.0.1:{port}"
            env = {"SMARTCITY_ROOT_SEED": b64url_encode(root.key.seed)}

            def run(*args: str) -> Any:
                return CliRunner().invoke(cli, ["authority", *args, "--ledger", url], env=env)

            granted = await asyncio.to_thread(run, "grant", "auditor", auditor.did)
            assert granted.exit_code == 0, granted.output
            held = (await client.get("/v1/authority")).json()["roles"]["auditor"]
            assert held == sorted([AUDITOR.did, auditor.did])  # beside the tests' own auditor
            revoked = await asyncio.to_thread(run, "revoke", "auditor", auditor.did)
            assert revoked.exit_code == 0, revoked.output
            assert (await client.get("/v1/authority")).json()["roles"]["auditor"] == [AUDITOR.did]
            # Signed by a key that is not the root: refused, and the command says so.
            env["SMARTCITY_ROOT_SEED"] = b64url_encode(Keypair.generate().seed)
            refused = await asyncio.to_thread(run, "grant", "auditor", auditor.did)
            assert refused.exit_code == 1 and "not-the-root" in refused.output
        finally:
            server.should_exit = True
            await serving


EXACT = parse_policy(
    {
        **TEST_POLICY.document,
        "version": "exact-1",
        "kinds": {"air": {**TEST_POLICY.document["kinds"]["air"], "data_reward": 1500}},
    }
)
"""Like the tests' policy, but rule ``data.air`` pays exactly what `signed_reward` pays: the amount an auditor
recomputes from a reward's disclosed reading."""


async def test_rewards_verify_in_public_and_auditor_modes_and_after_an_erasure(
    platform_settings: PlatformSettings, kafka_bootstrap: str
) -> None:
    """The public replay checks each reward without its evidence; the auditor's reads the evidence too, opens
    each commitment and recomputes each reward; a disclosure changed in the database is caught by the
    auditor, and an erased one leaves the chain verifying in both modes."""
    root, issuer = Root(), Keypair.generate()
    alice, bob = Keypair.generate(), Keypair.generate()
    producer = KafkaProducer(kafka_bootstrap, "audit-evidence-test")
    try:
        async with ledger(platform_settings, root, issuer) as (client, ledger_key):
            assert (await client.post("/v1/policies", json=policy_publication(EXACT))).status_code == 201
            rewards = [signed_reward(alice, seq=i, policy=EXACT) for i in range(3)]
            rewards.append(signed_reward(bob, seq=1, policy=EXACT))
            await producer.send_batch(reward_records(rewards))
            await until(lambda: sealed(client, alice.did, 3), "alice's rewards")
            await until(
                lambda: sealed(client, bob.did, 1), "bob's reward"
            )  # settled, so there is a row to tamper
            await until(lambda: all_sealed(client), "everything to be sealed")

            public_report = await verify_ledger(client, ledger_key, replay=True)
            audited = await verify_ledger(client, ledger_key, replay=True, deep=True, auditor=AUDITOR)
            assert public_report.transactions_checked == audited.transactions_checked == audited.tree_size

            store = client._transport.app.state.store  # type: ignore[attr-defined]
            async with store.connection() as conn:
                await conn.execute(
                    "UPDATE disclosures SET disclosure = convert_to(replace(convert_from(disclosure, 'UTF8'), "
                    "'12.5', '99.5'), 'UTF8') WHERE wallet = $1",
                    bob.did,
                )
            await verify_ledger(client, ledger_key, replay=True)  # the public sees only commitments
            with pytest.raises(Discrepancy, match="evidence-mismatch"):
                await verify_ledger(client, ledger_key, replay=True, auditor=AUDITOR)

            # Bob's evidence is erased (as a person's erasure does): gone for everyone, the chain still verifies.
            assert await DisclosureReads(store).erase_wallet(bob.did, datetime.now(UTC)) == 1
            [tx] = (await client.get(f"/v1/accounts/{bob.did}/transactions", auth=AS_AUDITOR)).json()[
                "transactions"
            ]
            erased = (
                await client.get(f"/v1/transactions/{tx['tx_id']}/disclosure", auth=SignedReadAuth(bob))
            ).json()
            assert set(erased) == {"tx_id", "erased_at"}
            await verify_ledger(client, ledger_key, replay=True)
            await verify_ledger(client, ledger_key, replay=True, deep=True, auditor=AUDITOR)
    finally:
        producer.close()
