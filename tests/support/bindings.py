"""Wallets bound to people, for tests: resident credentials made with an issuer key, the signed binding
requests a wallet sends identity (`POST /v1/bindings`), and the city.bindings.v1 records identity publishes.

A test that expects a wallet to earn under a policy requiring binding binds the wallet with these (through
identity's API with `bind_through_identity`, or straight onto the topic with `binding_record`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from services.common import events, sdjwt
from services.common.bindings import (
    CITY_KEY_FILE,
    RESIDENT_VCT,
    Binding,
    BindingView,
    binding_request,
    check_binding,
)
from services.common.dead_letters import DeadLetterProducer
from services.common.kafka import KafkaProducer, OutgoingRecord
from services.common.keyfiles import load_keypair
from services.common.signing import Keypair
from services.common.topics import BINDINGS
from tests.support.waiting import holds, until


def resident_credential(
    issuer: Keypair, holder: str, *, days: int = 30, status_index: int | None = None
) -> str:
    """An SD-JWT resident credential of `holder` signed by `issuer` (as identity issues them)."""
    now = int(time.time())
    status = None if status_index is None else {"status_list": {"idx": status_index, "uri": "test:status"}}
    claims = {"given_name": "Ada", "resident_of": "Smart City"}
    return sdjwt.issue(
        issuer, holder, claims, vct=RESIDENT_VCT, iat=now - 60, exp=now + days * 86400, status=status
    )


def checked_binding(issuer: Keypair, wallet: Keypair, holder: Keypair | None = None) -> Binding:
    """The checked binding of `wallet` to the person of a fresh credential of `holder` (default: the wallet)."""
    holder = holder or wallet
    request = binding_request(resident_credential(issuer, holder.did), holder, wallet, datetime.now(UTC))
    return check_binding(request, sdjwt.Verifier([issuer.did]))


def binding_record(issuer: Keypair, wallet: Keypair, holder: Keypair | None = None) -> dict[str, Any]:
    """A good city.bindings.v1 value binding `wallet`, as identity publishes it."""
    return checked_binding(issuer, wallet, holder).record(datetime.now(UTC))


async def bind_through_identity(
    identity: httpx.AsyncClient, issuer: Keypair, wallet: Keypair, facts: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Register `wallet` on identity, have `issuer` (an issuer-role key of that identity) order it a resident
    credential, and bind the wallet with it; the binding identity answers."""
    registration = wallet.sign({"did": wallet.did, "issued_at": events.now_rfc3339()})
    registered = await identity.post("/v1/identities", json=registration)
    assert registered.status_code in (200, 201), registered.text
    order = issuer.sign(
        {
            "issuer": issuer.did,
            "action": "issue-credential",
            "subject": wallet.did,
            "facts": facts or {"given_name": "Ada", "family_name": "Lovelace", "birthdate": "1990-05-17"},
            "issued_at": events.now_rfc3339(),
        }
    )
    issued = await identity.post("/v1/credentials", json=order)
    assert issued.status_code == 201, issued.text
    request = binding_request(issued.json()["sd_jwt"], wallet, wallet, datetime.now(UTC))
    bound = await identity.post("/v1/bindings", json=request)
    assert bound.status_code in (200, 201), bound.text
    return bound.json()["binding"]


def development_issuer_key(data_dir: Path) -> Keypair:
    """The identity city key of a data dir: the issuer ingest trusts when INGEST_BINDING_ISSUERS is unset."""
    return load_keypair(None, data_dir / CITY_KEY_FILE)


async def bind(bootstrap: str, data_dir: Path, wallet: Keypair, *apps: FastAPI) -> str:
    """Bind `wallet` to a person (a fresh credential of the data dir's identity key) straight on
    city.bindings.v1, as identity publishes it, and wait until the ingest `apps` see it; the person."""
    record = binding_record(development_issuer_key(data_dir), wallet)
    producer = KafkaProducer(bootstrap, client_id="test-bindings")
    try:
        await producer.send(OutgoingRecord(BINDINGS, wallet.did, record))
    finally:
        await asyncio.to_thread(producer.close)
    for app in apps:
        view = app.state.bindings
        await until(holds(lambda v=view: v.person_of(wallet.did) == record["person"]), "the binding seen")
    return record["person"]


@asynccontextmanager
async def binding_view(bootstrap: str, issuer: str, client_id: str) -> AsyncIterator[BindingView]:
    """A started, caught-up binding view trusting `issuer`, dead-lettering what it refuses as ingest's does."""
    dead_letters = DeadLetterProducer(bootstrap, client_id)
    view = BindingView(bootstrap, [issuer], client_id=client_id, dead_letter=dead_letters)
    try:
        await asyncio.to_thread(view.start)
        assert await asyncio.to_thread(view.wait_ready, 30)
        yield view
    finally:
        await asyncio.to_thread(view.close)
        await asyncio.to_thread(dead_letters.close)
