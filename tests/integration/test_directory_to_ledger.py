"""The ledger sees a merchant registered in the directory, end to end through city.merchants.v1: both apps
on the real broker and PostgreSQL, talked to only through their public APIs."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from services.common.settings import PlatformSettings
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair
from services.directory.app import create_app as create_directory
from services.directory.settings import DirectorySettings
from services.ledger.app import create_app as create_ledger
from services.ledger.settings import LedgerSettings
from tests.support.asgi import assert_problem, running
from tests.support.factories import merchant_registration, merchant_verification, signed_transfer
from tests.support.topics import unique_group

pytestmark = pytest.mark.integration

DEADLINE_S = 30
"""How long the ledger may take to fold a verified merchant (a consumer-group join on the embedded broker
takes a few seconds): a bound on the polling, not a timing under test."""

UNSEEN = ("aid-merchants-only", "merchant-not-verified")
"""The ledger's refusals of AID to a wallet it does not (yet) know as a merchant the city verified."""


async def register_and_verify(
    directory: httpx.AsyncClient, city: Keypair, merchant: Keypair, category: str
) -> None:
    """Register `merchant` in the directory as a business of `category` accepting AID, signed by its wallet,
    and have the city verify it there."""
    registration = merchant_registration(merchant, name=f"Local {category}", category=category)
    registered = await directory.post("/v1/merchants", json=registration)
    assert registered.status_code == 201, registered.text
    verified = await directory.post(
        f"/v1/merchants/{merchant.did}/verification", json=merchant_verification(city, registration)
    )
    assert verified.status_code == 200, verified.text


async def once_seen(ledger: httpx.AsyncClient, transfer: dict[str, Any]) -> httpx.Response:
    """POST `transfer` until the ledger judges it on the recipient's merchant facts, and return that answer.

    A refused transfer leaves the sender's nonce unused, so the same signed transfer can be sent again.
    """
    deadline = time.monotonic() + DEADLINE_S
    while True:
        response = await ledger.post("/v1/transfers", json=transfer)
        if response.status_code != 403 or not response.json()["type"].endswith(UNSEEN):
            return response
        assert time.monotonic() < deadline, f"the ledger never saw {transfer['to']}: {response.text}"
        await asyncio.sleep(0.1)


async def test_the_ledger_enforces_aid_at_a_merchant_registered_and_verified_in_the_directory(
    platform_settings: PlatformSettings,
) -> None:
    issuer, city, citizen = Keypair.generate(), Keypair.generate(), Keypair.generate()
    ledger_app = create_ledger(
        platform_settings,
        LedgerSettings(
            consumer_group=unique_group("ledger-directory"),
            issuer_keys=issuer.did,
            consumers=1,
            verify_workers=0,
        ),
    )
    directory_app = create_directory(platform_settings, DirectorySettings(verifier_keys=[city.did]))
    async with running(ledger_app) as ledger, running(directory_app) as directory:
        commands = [
            {"command": "fund", "pool": "aid", "currency": "AID", "amount": 10_000},
            {
                "command": "grant",
                "holder": citizen.did,
                "amount": 1_000,
                "categories": ["food"],
                "expires_at": "2099-01-01T00:00:00Z",
            },
        ]
        for nonce, command in enumerate(commands, start=1):
            signed = issuer.sign({**command, "issuer": issuer.did, "nonce": nonce})
            response = await ledger.post("/v1/issuer/commands", json=signed)
            assert response.status_code == 201, response.text

        # A wallet nobody has registered is no merchant to the ledger: AID cannot go there.
        grocer = Keypair.generate()
        unknown = await ledger.post(
            "/v1/transfers", json=signed_transfer(citizen, grocer.did, 250, nonce=1, currency="AID")
        )
        assert assert_problem(unknown, 403)["type"].endswith("aid-merchants-only")

        # It registers in the directory as food, and so does a clothing shop; the city verifies both.
        tailor = Keypair.generate()
        await register_and_verify(directory, city, grocer, "food")
        await register_and_verify(directory, city, tailor, "clothing")

        spent = await once_seen(ledger, signed_transfer(citizen, grocer.did, 250, nonce=2, currency="AID"))
        assert spent.status_code == 201, spent.text
        held = (await ledger.get(f"/v1/accounts/{grocer.did}", auth=SignedReadAuth(grocer))).json()[
            "balances"
        ]
        assert held["AID"] == 250
        assert (await ledger.get(f"/v1/accounts/{citizen.did}", auth=SignedReadAuth(citizen))).json()[
            "balances"
        ]["AID"] == 750

        # The grant allows food only: the verified clothing shop is refused for its category.
        refused = await once_seen(ledger, signed_transfer(citizen, tailor.did, 100, nonce=3, currency="AID"))
        body = assert_problem(refused, 403)
        assert body["type"].endswith("aid-not-allowed") and "clothing" in body["detail"]
        assert (await ledger.get(f"/v1/accounts/{tailor.did}", auth=SignedReadAuth(tailor))).json()[
            "balances"
        ]["AID"] == 0
