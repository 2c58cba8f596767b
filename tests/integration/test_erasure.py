"""A person's erasure across the platform, on the real broker and PostgreSQL, with identity calling ingest and the
ledger over real HTTP: identity records the request and erases its rows, ingest revokes the person's devices and
drops their registrations' details and decisions, the ledger erases the evidence of their rewards; the chain
keeps the commitments and verifies in public and auditor mode. A forged request erases nothing anywhere, and
what a service could not do is retried until the erasure completes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from nacl import pwhash
from pydantic import SecretStr
from sqlalchemy import text

from services.common import embedded
from services.common.events import now_rfc3339
from services.common.kafka import KafkaProducer
from services.common.settings import PlatformSettings
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair, b64url_encode
from services.identity.app import create_app as create_identity
from services.identity.service_client import ServiceClient
from services.identity.settings import IdentitySettings
from services.ingest.app import create_app as create_ingest
from services.ingest.settings import IngestSettings
from services.ledger.app import create_app as create_ledger
from services.ledger.settings import LedgerSettings
from services.ledger.verifier import verify_ledger
from tests.integration.test_ingest_decisions import decision
from tests.integration.test_ledger_audit import EXACT
from tests.support import ingest as ingest_objects
from tests.support.asgi import assert_problem, running, served
from tests.support.factories import (
    AS_AUDITOR,
    AUDITOR,
    ORACLE,
    TEST_ROLES,
    decisions_record,
    policy_publication,
    reward_records,
    signed_reward,
    with_memo,
)
from tests.support.topics import unique_group
from tests.support.waiting import until

pytestmark = pytest.mark.integration

PIN = "1357"


@asynccontextmanager
async def platform(
    settings: PlatformSettings, caseworker: Keypair, sender: Keypair, issuer: Keypair | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient, str]]:
    """The ledger and ingest served on ports, identity calling both; clients of the three and the ledger's key.
    `issuer` holds the ledger's issuer role."""
    ledger_key = Keypair.generate()
    ledger = create_ledger(
        settings,
        LedgerSettings(
            signing_key=SecretStr(b64url_encode(ledger_key.seed)),
            consumer_group=unique_group("ledger-erasure"),
            seal_interval_ms=50,
            verify_workers=0,
            genesis_roles=TEST_ROLES,
            issuer_keys=issuer.did if issuer else "",
        ),
    )
    ingest = create_ingest(
        settings, IngestSettings(decisions_group=unique_group("ingest-erasure"), rewards_oracles=[ORACLE.did])
    )
    async with (
        ledger.router.lifespan_context(ledger),
        served(ledger) as ledger_url,
        ingest.router.lifespan_context(ingest),
        served(ingest) as ingest_url,
    ):
        identity = create_identity(
            settings,
            IdentitySettings(
                caseworkers=[caseworker.did],
                notice_senders=[sender.did],
                pin_opslimit=pwhash.argon2id.OPSLIMIT_MIN,
                pin_memlimit=pwhash.argon2id.MEMLIMIT_MIN,
                ledger_url=ledger_url,
                ingest_url=ingest_url,
                erasure_retry_s=0.2,
            ),
        )
        async with (
            running(identity) as identity_client,
            httpx.AsyncClient(base_url=ledger_url) as ledger_client,
            httpx.AsyncClient(base_url=ingest_url) as ingest_client,
        ):
            yield identity_client, ingest_client, ledger_client, ledger_key.did


def erasure(person: Keypair, **fields: Any) -> dict[str, Any]:
    return person.sign({"did": person.did, "action": "erase", "issued_at": now_rfc3339(), **fields})


async def rows(client: httpx.AsyncClient, query: str, **params: Any) -> list[Any]:
    """Rows of a query on the database of the app behind `client` (in-process)."""
    engine = client._transport.app.state.engine  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        return list((await conn.execute(text(query), params)).all())


async def disclosures(ledger: httpx.AsyncClient, wallet: Keypair) -> list[dict[str, Any]]:
    """The evidence of each reward that paid `wallet`, as the holder reads it."""
    txs = (await ledger.get(f"/v1/accounts/{wallet.did}/transactions", auth=AS_AUDITOR)).json()[
        "transactions"
    ]
    return [
        (await ledger.get(f"/v1/transactions/{t['tx_id']}/disclosure", auth=SignedReadAuth(wallet))).json()
        for t in txs
    ]


async def test_an_erasure_leaves_commitments_that_verify_and_a_forged_one_erases_nothing(
    platform_settings: PlatformSettings, kafka_bootstrap: str
) -> None:
    caseworker, sender, alice, bob, mallory = (Keypair.generate() for _ in range(5))
    device = Keypair.generate()
    producer = KafkaProducer(kafka_bootstrap, "erasure-test")
    try:
        async with platform(platform_settings, caseworker, sender) as (identity, ingest, ledger, ledger_key):
            # Alice: an identity with a zone, a notice, a located device, a decision, rewards on the chain.
            registration = alice.sign({"did": alice.did, "zone": "old-town", "issued_at": now_rfc3339()})
            assert (await identity.post("/v1/identities", json=registration)).status_code == 201
            notice = sender.sign(
                {
                    "sender": sender.did,
                    "recipient": alice.did,
                    "title": "Shelter",
                    "body": "Beds free tonight",
                    "issued_at": now_rfc3339(),
                }
            )
            assert (await identity.post("/v1/notices", json=notice)).status_code == 201
            located = ingest_objects.registration(alice, device, location={"lat": 52.37, "lon": 4.9})
            assert (await ingest.post("/v1/devices", json=located)).status_code == 201
            decided = decision(alice.did, device.did, 1)
            await producer.send_batch([decisions_record(device.did, [decided])])
            as_alice = SignedReadAuth(alice)

            async def decisions_of_alice() -> list[Any]:
                return (await ingest.get(f"/v1/wallets/{alice.did}/decisions", auth=as_alice)).json()[
                    "decisions"
                ]

            await until(decisions_of_alice, "alice's decision at ingest")
            assert (await ledger.post("/v1/policies", json=policy_publication(EXACT))).status_code == 201
            rewards = [signed_reward(alice, seq=i, policy=EXACT) for i in range(2)]
            rewards.append(signed_reward(bob, seq=1, policy=EXACT))
            await producer.send_batch(reward_records(rewards))

            async def sealed() -> bool:
                txs = [
                    t
                    for wallet in (alice, bob)
                    for t in (
                        await ledger.get(f"/v1/accounts/{wallet.did}/transactions", auth=AS_AUDITOR)
                    ).json()["transactions"]
                ]
                return len(txs) == 3 and all(t["leaf_index"] is not None for t in txs)

            await until(sealed, "the rewards to be sealed")
            await verify_ledger(ledger, ledger_key, replay=True, deep=True, auditor=AUDITOR)

            # Forged: signed by someone else, or Alice's signature written another way. Refused everywhere.
            forged = mallory.sign({"did": alice.did, "action": "erase", "issued_at": now_rfc3339()})
            genuine = erasure(alice)
            padded = {**genuine, "sig": genuine["sig"] + "=="}
            for refused in (forged, padded):
                for service in (identity, ingest, ledger):
                    problem = assert_problem(await service.post("/v1/erasures", json=refused), 400)
                    assert problem["type"].endswith("/invalid-signature")
            assert_problem(
                await identity.post("/v1/erasures", json={"did": alice.did, "action": "erase"}), 422
            )
            assert all("salt" in d for d in await disclosures(ledger, alice))
            assert await decisions_of_alice()
            assert (await rows(identity, "SELECT zone FROM identities WHERE did = :d", d=alice.did)) == [
                ("old-town",)
            ]
            assert not await rows(identity, "SELECT 1 FROM erasures")

            # Alice's own request: recorded, done by identity, ingest and the ledger at once.
            answer = await identity.post("/v1/erasures", json=genuine)
            assert answer.status_code == 200, answer.text
            status = answer.json()
            assert status["status"] == "completed" and all(status["completed"].values())
            again = await identity.post("/v1/erasures", json=genuine)
            assert again.status_code == 200 and again.json()["request_id"] == status["request_id"]
            assert (await ledger.post("/v1/erasures", json=genuine)).status_code == 200  # done before

            # The ledger: Alice's evidence erased, Bob's kept; the chain verifies in both modes.
            assert all(set(d) == {"tx_id", "erased_at"} for d in await disclosures(ledger, alice))
            assert all("salt" in d for d in await disclosures(ledger, bob))
            await verify_ledger(ledger, ledger_key, replay=True)
            await verify_ledger(ledger, ledger_key, replay=True, deep=True, auditor=AUDITOR)

            # Ingest: the device revoked, its place gone, the decisions gone (and not stored again on redelivery).
            stored = (await ingest.get(f"/v1/devices/{device.did}", auth=as_alice)).json()
            assert stored["status"] == "revoked" and stored["location"] is None
            assert "location" not in stored["registration"] and "sig" not in stored["registration"]
            assert await decisions_of_alice() == []
            # Alice's decision delivered again, then Bob's: once Bob's is kept, Alice's was not stored again.
            bobs = decision(bob.did, Keypair.generate().did, 1)
            await producer.send_batch(
                [
                    decisions_record(device.did, [decided]),
                    decisions_record(device.did, [bobs]),  # same partition, after it
                ]
            )

            async def decisions_of_bob() -> list[Any]:
                found = await ingest.get(f"/v1/wallets/{bob.did}/decisions", auth=SignedReadAuth(bob))
                return found.json()["decisions"]

            await until(decisions_of_bob, "bob's decision at ingest")
            assert await decisions_of_alice() == []

            # Identity: the registration, zone and notice gone; the request and its completion recorded.
            assert await rows(
                identity, "SELECT registration, zone FROM identities WHERE did = :d", d=alice.did
            ) == [(None, None)]
            assert not await rows(identity, "SELECT 1 FROM notices WHERE recipient = :d", d=alice.did)
            seen = await identity.get(f"/v1/erasures/{status['request_id']}", auth=as_alice)
            assert seen.status_code == 200 and seen.json()["completed_at"]
            assert_problem(await identity.get(f"/v1/erasures/{status['request_id']}"), 401)
            assert_problem(
                await identity.get(f"/v1/erasures/{status['request_id']}", auth=SignedReadAuth(bob)), 403
            )
    finally:
        producer.close()


async def test_a_kiosk_erasure_is_retried_until_every_service_has_done_it(
    platform_settings: PlatformSettings,
) -> None:
    caseworker, sender = Keypair.generate(), Keypair.generate()
    async with platform(platform_settings, caseworker, sender) as (identity, _, ledger, _key):
        order = caseworker.sign({"issued_at": now_rfc3339(), "caseworker": caseworker.did, "action": "enrol"})
        enrolled = await identity.post("/v1/custodial-wallets", json={"enrolment": order, "pin": PIN})
        did = enrolled.json()["did"]
        app = identity._transport.app  # type: ignore[attr-defined]
        services = app.state.erasure_services
        working = services["ingest"]
        services["ingest"] = ServiceClient(
            "ingest", f"http://127.0.0.1:{embedded.free_port()}", 2.0
        )  # ingest unreachable
        try:
            asked = await identity.post(f"/v1/custodial-wallets/{did}/erasure", json={"pin": PIN})
            assert asked.status_code == 202, asked.text
            status = asked.json()
            assert status["completed"]["identity"] and status["completed"]["ledger"]
            assert status["completed"]["ingest"] is None and status["status"] == "in-progress"
            # Asking again at the kiosk answers the erasure in progress, not a new one.
            again = await identity.post(f"/v1/custodial-wallets/{did}/erasure", json={"pin": PIN})
            assert again.status_code == 202 and again.json()["request_id"] == status["request_id"]
        finally:
            await services["ingest"].aclose()
            services["ingest"] = working

        async def completed() -> bool:
            found = await rows(
                identity, "SELECT completed_at FROM erasures WHERE request_id = :r", r=status["request_id"]
            )
            return found[0][0] is not None

        await until(completed, "the retry to reach ingest")
        # The wallet stays (not closed): the PIN still opens it; the request is the person's, signed with their key.
        assert (
            await identity.post(f"/v1/custodial-wallets/{did}/notices", json={"pin": PIN})
        ).status_code == 200
        assert status["request"]["did"] == did
        assert (await ledger.post("/v1/erasures", json=status["request"])).status_code == 200


async def test_a_kiosk_erasure_names_the_aid_holder_key_so_its_memos_go_too(
    platform_settings: PlatformSettings,
) -> None:
    """Nothing on the chain links a person's AID holder key to their wallet, so a request by the wallet alone
    could not erase what the holder key is party to. At a kiosk identity signs the request with both keys; the
    ledger erases the memos of both, and refuses a request naming a holder key that did not sign it."""
    caseworker, sender, issuer = (Keypair.generate() for _ in range(3))
    async with platform(platform_settings, caseworker, sender, issuer) as (identity, _, ledger, _key):
        order = caseworker.sign({"issued_at": now_rfc3339(), "caseworker": caseworker.did, "action": "enrol"})
        did = (await identity.post("/v1/custodial-wallets", json={"enrolment": order, "pin": PIN})).json()[
            "did"
        ]
        opened = await identity.post(f"/v1/custodial-wallets/{did}/aid-holder", json={"pin": PIN})
        holder = opened.json()["aid_holder"]
        expires = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        commands = [
            ({"command": "fund", "pool": "aid", "currency": "AID", "amount": 1000}, None),
            (
                {
                    "command": "grant",
                    "holder": holder,
                    "amount": 400,
                    "categories": ["food"],
                    "expires_at": expires,
                },
                "family of four, shelter on Harbour Street",
            ),
            ({"command": "mint", "to": sender.did, "currency": "CITY", "amount": 5}, "a neighbour's memo"),
        ]
        granted = []
        for nonce, (command, memo) in enumerate(commands, start=1):
            body = with_memo(issuer, {**command, "issuer": issuer.did, "nonce": nonce}, memo)
            answer = await ledger.post("/v1/issuer/commands", json=body)
            assert answer.status_code == 201, answer.text
            granted.append(answer.json()["tx_id"])
        grant_memo = f"/v1/transactions/{granted[1]}/memo"
        assert (await ledger.get(grant_memo, auth=AS_AUDITOR)).json()["memo"].startswith("family of four")

        # Someone naming the holder key in their own request, without its signature, erases nothing of it.
        mallory = Keypair.generate()
        forged = mallory.sign(
            {
                "did": mallory.did,
                "action": "erase",
                "aid_holder": holder,
                "aid_holder_sig": "A" * 86,
                "issued_at": now_rfc3339(),
            }
        )
        assert_problem(await ledger.post("/v1/erasures", json=forged), 400)
        assert "memo" in (await ledger.get(grant_memo, auth=AS_AUDITOR)).json()

        asked = await identity.post(f"/v1/custodial-wallets/{did}/erasure", json={"pin": PIN})
        assert asked.status_code == 200, asked.text
        assert asked.json()["request"]["aid_holder"] == holder
        erased = (await ledger.get(grant_memo, auth=AS_AUDITOR)).json()
        assert "memo" not in erased and erased["erased_at"]
        kept = (await ledger.get(f"/v1/transactions/{granted[2]}/memo", auth=AS_AUDITOR)).json()
        assert kept["memo"] == "a neighbour's memo"
