"""Identities and custodial wallets: registering a did, a caseworker enrolling a person without a phone, and
what the person does with their PIN (export the key, present a credential, read notices at a kiosk). Wrong PINs
count towards an escalating lockout, and a did without a wallet is answered alike (`custody.PinGuard`)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import SQLAlchemyError

from services.common import didkey, events, sdjwt, signing
from services.common.aid_holder import aid_holder
from services.common.didkey import DidKeyError
from services.common.http import Problem
from services.common.openapi import answers, problems, raw_body, signed_by
from services.common.signing import Keypair
from services.identity import custody, did, requests
from services.identity.api import models
from services.identity.api.common import (
    PIN_PROBLEMS,
    ROLE,
    SIGNED,
    UNAVAILABLE,
    CustodialPresentationBody,
    EnrolmentBody,
    PinBody,
    _body,
    _check,
    _now,
    _settings,
    _signed,
    _store,
    _unavailable,
)
from services.identity.api.notices import _notices
from services.identity.metrics import PIN_CHECKS
from services.identity.store import (
    CUSTODIAL,
    WalletLockedError,
    WrongPinAttemptError,
)

router = APIRouter(prefix="/v1")


@router.get(
    "/identities/{did_value}",
    tags=["identities"],
    summary="Resolve a did:key to its public key and DID document",
    response_model=models.Resolution,
    responses=problems((400, "Not an Ed25519 did:key")),
)
async def resolve_identity(did_value: str) -> dict[str, Any]:
    try:
        return did.resolve(did_value)
    except DidKeyError as exc:
        raise Problem(400, "invalid-did", f"{did_value!r} is not an Ed25519 did:key: {exc}") from exc


@router.post(
    "/identities",
    status_code=201,
    tags=["identities"],
    summary="Register a did:key the person controls (signed by that key)",
    response_model=models.Identity,
    responses={**answers(models.Identity, description="Registered before"), **problems(SIGNED, UNAVAILABLE)},
    openapi_extra=raw_body(
        requests.Registration, models.REQUESTS["registration"], signers=[signed_by("did")]
    ),
)
async def register_identity(request: Request, response: Response) -> dict[str, Any]:
    registration, body = await _signed(request, requests.Registration, "did")
    store = _store(request)
    try:
        created = await store.register(registration.did, body)
        identity = await store.identity(registration.did)
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    response.status_code = 201 if created else 200
    return {"did": registration.did, "custody": identity["custody"] if identity else "self"}


@router.post(
    "/custodial-wallets",
    status_code=201,
    tags=["identities"],
    summary="A caseworker enrols a person into a custodial wallet opened by their PIN",
    response_model=models.Identity,
    responses={
        **answers(
            models.Identity, description="The same enrolment order again: its wallet, not a second one"
        ),
        **problems(SIGNED, ROLE, UNAVAILABLE),
    },
    openapi_extra=raw_body(
        EnrolmentBody, models.REQUESTS["enrolment"], signers=[signed_by("caseworker", at="enrolment")]
    ),
)
async def enrol(request: Request, response: Response) -> dict[str, Any]:
    settings = _settings(request)
    body = await _body(request, EnrolmentBody)
    pin = _pin(body.pin)
    enrolment = _check(
        request, requests.Enrolment, body.enrolment, "caseworker", settings.caseworkers, "caseworker"
    )
    person = Keypair.generate()
    app = request.app
    async with app.state.kdf_slots:  # each Argon2id derivation holds pin_memlimit bytes
        sealed, salt = await asyncio.to_thread(
            custody.seal, app.state.wallet_key, person.seed, pin, app.state.kdf_cost
        )
    try:
        did, created = await _store(request).enrol(
            person.did,
            sealed,
            salt,
            enrolment.caseworker,
            body.enrolment,
            requests.request_id(body.enrolment),
            custody.seal_recovery(app.state.wallet_key, person.seed),
        )
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    if not created:
        response.status_code = 200  # the same order again: its wallet, not a second one
    return {"did": did, "custody": CUSTODIAL}


def _pin(pin: str) -> str:
    try:
        return custody.check_pin_format(pin)
    except ValueError as exc:
        raise Problem(422, "invalid-pin", str(exc)) from exc


async def _open_wallet(
    request: Request, did_value: str, pin: str, *, export: bool = False
) -> tuple[Keypair, list[str]]:
    """The person's key, if their PIN opens their custodial wallet, and with `export` the credentials the city
    kept for them. Wrong PINs count towards an escalating lockout; a did with no wallet gets the very answer
    a wrong PIN gets (in the same time), so these endpoints do not tell who holds a custodial wallet."""
    settings = _settings(request)
    app = request.app
    pin = _pin(pin)
    if not didkey.is_did_key(did_value):
        raise Problem(422, "invalid-did", f"{did_value!r} is not a did:key.")

    def unseal(sealed: bytes, salt: bytes) -> bytes:
        return custody.unseal(app.state.wallet_key, sealed, salt, pin, app.state.kdf_cost)

    try:
        async with app.state.kdf_slots:  # each Argon2id derivation holds pin_memlimit bytes
            seed, kept = await _store(request).open_wallet(
                did_value,
                unseal,
                lambda: custody.decoy(pin, app.state.kdf_cost),
                now=_now(),
                lockout=settings.lockout,
                export=export,
            )
    except WalletLockedError as exc:
        PIN_CHECKS.labels("locked").inc()
        retry = max(1, int((exc.until - _now()).total_seconds()))
        raise Problem(
            423,
            "wallet-locked",
            "Too many wrong PINs: PINs for this did are refused until the lock ends.",
            headers={"Retry-After": str(retry)},
            locked_until=events.rfc3339(exc.until),
        ) from exc
    except WrongPinAttemptError as exc:
        PIN_CHECKS.labels("wrong").inc()
        raise Problem(
            403,
            "wrong-pin",
            f"The PIN does not open a wallet of this did; {exc.remaining} attempts left.",
            attempts_left=exc.remaining,
        ) from exc
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    PIN_CHECKS.labels("ok").inc()
    return Keypair.from_seed(seed), kept


@router.post(
    "/custodial-wallets/{did_value}/export",
    tags=["identities"],
    summary="Take the key out to the person's own device; the city's copy is deleted",
    response_model=models.ExportedWallet,
    responses=PIN_PROBLEMS,
    openapi_extra=raw_body(PinBody, models.PIN),
)
async def export_wallet(did_value: str, request: Request) -> dict[str, Any]:
    body = await _body(request, PinBody)
    person, kept = await _open_wallet(request, did_value, body.pin, export=True)
    return {
        "did": person.did,
        "seed": signing.b64url_encode(person.seed),
        "custody": "self",
        "credentials": kept,
    }


async def _custodial_credential(request: Request, did_value: str, pin: str) -> tuple[Keypair, str]:
    """The person's key, if their PIN opens their custodial wallet, and the valid credential the city keeps for
    them (404 if none)."""
    person, _ = await _open_wallet(request, did_value, pin)
    try:
        credential = await _store(request).custodial_credential(did_value, _now())
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    if credential is None:
        raise Problem(404, "not-found", f"{did_value} holds no valid credential.")
    return person, credential


@router.post(
    "/custodial-wallets/{did_value}/presentations",
    tags=["credentials"],
    summary="Present the custodial holder's credential, disclosing only the claims asked for",
    response_model=models.Presentation,
    responses={**PIN_PROBLEMS, **problems((404, "The city keeps no valid credential for the did"))},
    openapi_extra=raw_body(CustodialPresentationBody, models.REQUESTS["presentation"]),
)
async def present_custodial(did_value: str, request: Request) -> dict[str, Any]:
    body = await _body(request, CustodialPresentationBody)
    person, credential = await _custodial_credential(request, did_value, body.pin)
    try:
        presentation = sdjwt.present(
            credential, body.disclose, person, nonce=body.nonce, audience=body.audience, iat=int(time.time())
        )
    except ValueError as exc:
        raise Problem(422, "unknown-claim", str(exc)) from exc
    return {"presentation": presentation}


@router.post(
    "/custodial-wallets/{did_value}/notices",
    tags=["notices"],
    summary="Read a custodial person's notices at a kiosk, with their PIN",
    response_model=models.Inbox,
    response_model_exclude_unset=True,
    responses=PIN_PROBLEMS,
    openapi_extra=raw_body(PinBody, models.PIN),
)
async def read_custodial_notices(did_value: str, request: Request) -> dict[str, Any]:
    body = await _body(request, PinBody)
    person, _ = await _open_wallet(request, did_value, body.pin)
    return await _notices(request, did_value, aid_holder(person).did)
