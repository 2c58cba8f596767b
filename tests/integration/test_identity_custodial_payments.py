"""A custodial holder pays and reads their statement with their PIN: the identity app signs their transfer and
submits it to a ledger it reaches over real HTTP (the ledger app served on a port), on the real broker and
PostgreSQL. The ledger decides; its refusals come back with their own type; a request id pays once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from nacl import pwhash
from pydantic import SecretStr

from services.common import embedded, signing
from services.common.events import now_rfc3339
from services.common.settings import PlatformSettings
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair, b64url_encode
from services.identity.app import create_app as create_identity
from services.identity.settings import IdentitySettings
from services.ledger.app import create_app as create_ledger
from services.ledger.settings import LedgerSettings
from tests.support.asgi import assert_problem, running, served
from tests.support.factories import AS_AUDITOR, TEST_ROLES
from tests.support.topics import unique_group

pytestmark = pytest.mark.integration

PIN = "2468"


@asynccontextmanager
async def ledger(platform: PlatformSettings, issuer: Keypair) -> AsyncIterator[httpx.AsyncClient]:
    """A ledger app served on a real port (the identity app calls it over HTTP), and a client of it."""
    settings = LedgerSettings(
        signing_key=SecretStr(b64url_encode(Keypair.generate().seed)),
        consumer_group=unique_group("ledger-custodial"),
        seal_interval_ms=50,
        issuer_keys=issuer.did,
        verify_workers=0,
        genesis_roles=TEST_ROLES,
    )
    app = create_ledger(platform, settings)
    async with (
        app.router.lifespan_context(app),
        served(app) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        yield client


def identity_settings(caseworker: Keypair, ledger_url: str) -> IdentitySettings:
    return IdentitySettings(
        caseworkers=[caseworker.did],
        # The cheapest Argon2id the library allows keeps the tests fast.
        pin_opslimit=pwhash.argon2id.OPSLIMIT_MIN,
        pin_memlimit=pwhash.argon2id.MEMLIMIT_MIN,
        pin_attempts=5,
        ledger_url=ledger_url,
    )


async def enrol(identity: httpx.AsyncClient, caseworker: Keypair) -> str:
    """A caseworker enrols a person into a custodial wallet opened by `PIN`; their did."""
    order = caseworker.sign({"issued_at": now_rfc3339(), "caseworker": caseworker.did, "action": "enrol"})
    response = await identity.post("/v1/custodial-wallets", json={"enrolment": order, "pin": PIN})
    assert response.status_code == 201, response.text
    return response.json()["did"]


async def mint(ledger_client: httpx.AsyncClient, issuer: Keypair, nonce: int, to: str, amount: int) -> None:
    command = issuer.sign(
        {
            "command": "mint",
            "issuer": issuer.did,
            "nonce": nonce,
            "to": to,
            "currency": "CITY",
            "amount": amount,
        }
    )
    response = await ledger_client.post("/v1/issuer/commands", json=command)
    assert response.status_code == 201, response.text


async def balance(ledger_client: httpx.AsyncClient, wallet: str) -> int:
    response = await ledger_client.get(f"/v1/accounts/{wallet}", auth=AS_AUDITOR)
    assert response.status_code == 200, response.text
    return response.json()["balances"]["CITY"]


def payment(to: str, amount: Any, request_id: str, **fields: Any) -> dict[str, Any]:
    return {"pin": PIN, "to": to, "amount": amount, "currency": "CITY", "request_id": request_id, **fields}


async def test_a_custodial_holder_pays_with_their_pin_once_per_request_and_reads_their_statement(
    platform_settings: PlatformSettings,
) -> None:
    issuer, caseworker, bob = Keypair.generate(), Keypair.generate(), Keypair.generate()
    async with ledger(platform_settings, issuer) as chain:
        settings = identity_settings(caseworker, str(chain.base_url))
        async with running(create_identity(platform_settings, settings)) as identity:
            person = await enrol(identity, caseworker)
            await mint(chain, issuer, 1, person, 1000)
            pay = f"/v1/custodial-wallets/{person}/transfers"

            # The holder pays bob with their PIN: identity signed it with the holder's key, the ledger settled it.
            first = await identity.post(pay, json=payment(bob.did, 250, "kiosk-1", memo="lunch"))
            assert first.status_code == 201, first.text
            receipt = first.json()
            assert receipt["status"] in ("settled", "sealed") and len(receipt["tx_id"]) == 64
            record = (await chain.get(f"/v1/transactions/{receipt['tx_id']}")).json()
            transfer = record["transfer"]
            assert (transfer["from"], transfer["to"], transfer["amount"]) == (person, bob.did, 250)
            assert "lunch" not in str(record)  # the chain holds the memo's salted digest only
            signing.verify(transfer, "from")  # the holder's own key signed it, the digest included
            memo = await chain.get(f"/v1/transactions/{receipt['tx_id']}/memo", auth=SignedReadAuth(bob))
            assert memo.status_code == 200, memo.text
            assert memo.json()["memo"] == "lunch" and memo.json()["memo_digest"] == transfer["memo_digest"]
            assert await balance(chain, bob.did) == 250
            assert await balance(chain, person) == 750

            # The same request again: the same receipt, nothing paid twice.
            again = await identity.post(pay, json=payment(bob.did, 250, "kiosk-1", memo="lunch"))
            assert again.status_code == 200, again.text
            assert again.json() == receipt
            assert await balance(chain, person) == 750 and await balance(chain, bob.did) == 250
            # The same request id for another payment is refused, not taken for the first one.
            reused = assert_problem(await identity.post(pay, json=payment(bob.did, 1, "kiosk-1")), 409)
            assert reused["type"].endswith("/request-id-reused")
            other_memo = payment(bob.did, 250, "kiosk-1", memo="dinner")
            reused = assert_problem(await identity.post(pay, json=other_memo), 409)
            assert reused["type"].endswith("/request-id-reused")

            # A wrong PIN pays nothing.
            wrong = assert_problem(
                await identity.post(pay, json={**payment(bob.did, 10, "kiosk-2"), "pin": "1357"}), 403
            )
            assert wrong["type"].endswith("/wrong-pin")
            assert await balance(chain, person) == 750

            # Amounts are positive JSON integers, currencies CITY or AID, the payee a did:key: 422 problems.
            for amount in (200.0, -5, 0, "10", True):
                assert_problem(await identity.post(pay, json=payment(bob.did, amount, "kiosk-3")), 422)
            assert_problem(
                await identity.post(pay, json={**payment(bob.did, 10, "kiosk-3"), "currency": "CREDIT"}), 422
            )
            assert_problem(await identity.post(pay, json=payment("bob", 10, "kiosk-3")), 422)
            assert_problem(
                await identity.post(
                    pay, json={k: v for k, v in payment(bob.did, 10, "x").items() if k != "request_id"}
                ),
                422,
            )

            # The ledger's refusals come back with their own status and type, never a 500.
            broke = assert_problem(await identity.post(pay, json=payment(bob.did, 10**12, "kiosk-4")), 409)
            assert broke["type"].endswith("/insufficient-funds")
            aid = assert_problem(
                await identity.post(pay, json={**payment(bob.did, 5, "kiosk-5"), "currency": "AID"}), 403
            )
            assert aid["type"].endswith("/aid-merchants-only")
            itself = assert_problem(await identity.post(pay, json=payment(person, 5, "kiosk-6")), 422)
            assert itself["type"].endswith("/self-transfer")
            assert await balance(chain, person) == 750 and await balance(chain, bob.did) == 250

            # A later payment settles a higher nonce; the refused one, retried once funded, is signed again with
            # a fresh nonce and pays once.
            later = await identity.post(pay, json=payment(bob.did, 700, "kiosk-7"))
            assert later.status_code == 201, later.text
            await mint(chain, issuer, 2, person, 10**12)
            retried = await identity.post(pay, json=payment(bob.did, 10**12, "kiosk-4"))
            assert retried.status_code == 201, retried.text
            assert await balance(chain, person) == 50
            assert await balance(chain, bob.did) == 250 + 700 + 10**12
            assert (
                await identity.post(pay, json=payment(bob.did, 10**12, "kiosk-4"))
            ).json() == retried.json()

            # The statement: the holder's balances and their transactions, newest first.
            statement = await identity.post(f"/v1/custodial-wallets/{person}/statement", json={"pin": PIN})
            assert statement.status_code == 200, statement.text
            shown = statement.json()
            assert shown["did"] == person and shown["balances"]["CITY"] == 50
            tx_ids = [t["tx_id"] for t in shown["transactions"]]
            paid_ids = [retried.json()["tx_id"], later.json()["tx_id"], receipt["tx_id"]]
            assert [t for t in tx_ids if t in paid_ids] == paid_ids  # each payment once, newest first
            assert len(tx_ids) == 5  # the two mints and the three payments: nothing refused moved money
            paid = next(t for t in shown["transactions"] if t["tx_id"] == receipt["tx_id"])
            assert paid["changes"] == {"CITY": -250}
            assert_problem(
                await identity.post(f"/v1/custodial-wallets/{person}/statement", json={"pin": "1357"}), 403
            )


async def test_an_unreachable_ledger_is_a_503_to_retry(platform_settings: PlatformSettings) -> None:
    caseworker, bob = Keypair.generate(), Keypair.generate()
    nowhere = f"http://127.0.0.1:{embedded.free_port()}"
    async with running(
        create_identity(platform_settings, identity_settings(caseworker, nowhere))
    ) as identity:
        person = await enrol(identity, caseworker)
        for path, body in (
            ("transfers", payment(bob.did, 10, "kiosk-1")),
            ("statement", {"pin": PIN}),
        ):
            problem = await identity.post(f"/v1/custodial-wallets/{person}/{path}", json=body)
            assert assert_problem(problem, 503)["type"].endswith("/ledger-unavailable")
            assert int(problem.headers["Retry-After"]) >= 1
