"""Bindings: a wallet bound to a person by a presentation of a resident credential, stored and published to
``city.bindings.v1``, where ingest follows it (a wallet earns rewards only once bound: the policy's
``people``). See `services.common.bindings` for the request, the record and the person id; and for how a
person's erasure removes their wallet's binding there (`publish_unbindings`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import SQLAlchemyError

from services.common import bindings, events, sdjwt, signing
from services.common.bindings import BindingError, check_binding
from services.common.http import Problem, read_json_body
from services.common.kafka import BrokerUnavailableError, KafkaProducer, OutgoingRecord
from services.common.openapi import answers, problems, raw_body, signed_by
from services.common.topics import BINDINGS
from services.identity.api import models
from services.identity.api.common import (
    BINDING_EVENT,
    EVENT_SOURCE,
    PIN_PROBLEMS,
    SIGNED,
    UNAVAILABLE,
    PinBody,
    _body,
    _now,
    _settings,
    _store,
    _unavailable,
)
from services.identity.api.credentials import _status_uri
from services.identity.api.wallets import _custodial_credential
from services.identity.metrics import BINDING_CHANGES
from services.identity.store import BindingLimitError

router = APIRouter(prefix="/v1")

BOUND_BEFORE = answers(
    models.BindingAnswer, description="The wallet was bound to this person before: its binding"
)
REFUSALS = (
    409,
    "The wallet is bound to another person (wallet-bound-elsewhere), the credential binds the most wallets "
    "already (binding-limit), or it is revoked (credential-revoked)",
)


def _problem(exc: BindingError) -> Problem:
    """The problem a refused binding request answers, by its reason."""
    if exc.reason == bindings.SIGNATURE:
        return Problem(400, "invalid-signature", exc.detail, reason=exc.reason)
    if exc.reason == bindings.MALFORMED:
        return Problem(422, "invalid-binding", exc.detail, reason=exc.reason)
    if exc.reason == f"presentation-{sdjwt.REVOKED}":
        return Problem(409, "credential-revoked", exc.detail, reason=exc.reason)
    if exc.reason == f"presentation-{sdjwt.EXPIRED}":
        return Problem(422, "credential-expired", exc.detail, reason=exc.reason)
    if exc.reason == bindings.NOT_RESIDENT:
        return Problem(422, "not-a-resident-credential", exc.detail, reason=exc.reason)
    return Problem(422, "invalid-presentation", exc.detail, title="Presentation rejected", reason=exc.reason)


async def _bind(request: Request, body: Any, response: Response) -> dict[str, Any]:
    """Check a signed binding request, then store and publish it; the answer of both binding routes."""
    settings = _settings(request)
    now = _now()
    try:
        binding = check_binding(body, request.app.state.verifier, now=int(now.timestamp()))
        if abs((now - binding.signed_at).total_seconds()) > settings.request_skew_s:
            raise Problem(
                400, "stale-request", f"issued_at must be within {settings.request_skew_s} s of now."
            )
        if binding.status_index is not None:
            if binding.status_uri != _status_uri(settings):
                raise BindingError(
                    f"presentation-{sdjwt.MALFORMED}", "the credential names an unknown status list"
                )
            if await _store(request).is_revoked(binding.status_index):
                raise BindingError(f"presentation-{sdjwt.REVOKED}", "the issuer has revoked the credential")
    except BindingError as exc:
        BINDING_CHANGES.labels(exc.reason).inc()
        raise _problem(exc) from exc
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    producer: KafkaProducer = request.app.state.producer

    async def publish(bound_at: datetime) -> None:
        ce_id = signing.sha256_hex(signing.canonical_bytes(dict(binding.signed)))
        headers = events.cloudevent_headers(BINDING_EVENT, EVENT_SOURCE, ce_id)
        await producer.send(OutgoingRecord(BINDINGS, binding.wallet, binding.record(bound_at), headers))

    try:
        row, created = await _store(request).bind(binding, now, publish, settings.wallets_per_person)
    except BindingLimitError as exc:
        BINDING_CHANGES.labels("limit").inc()
        raise Problem(
            409,
            "binding-limit",
            f"This credential binds {exc.bound} wallets already, the most one person may bind "
            f"(IDENTITY_WALLETS_PER_PERSON).",
        ) from exc
    except (BrokerUnavailableError, SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    if not created and row["person"] != binding.person:
        BINDING_CHANGES.labels("bound-elsewhere").inc()
        raise Problem(
            409,
            "wallet-bound-elsewhere",
            f"{binding.wallet} is bound to another credential's person already; a wallet is bound once.",
        )
    BINDING_CHANGES.labels("bound" if created else "again").inc()
    response.status_code = 201 if created else 200
    return {"binding": _record(row)}


async def publish_unbindings(request: Request, removed: Sequence[Mapping[str, Any]]) -> None:
    """Remove the bindings identity deleted on a person's erasure (each row's wallet and signed request) from
    city.bindings.v1: the city key's signed unbinding, then, once the broker has it, a tombstone on the
    wallet's key for compaction. Views drop a binding only on the signed unbinding (a tombstone carries no
    signature: anyone able to write the topic could forge one), see `services.common.bindings`. Raises
    `BrokerUnavailableError` (the erasure then does not commit, and is asked again)."""
    producer: KafkaProducer = request.app.state.producer
    city = request.app.state.city
    for row in removed:
        record = bindings.unbinding(city, row["wallet"], row["binding"], _now())
        ce_id = signing.object_id(record["unbinding"])
        headers = events.cloudevent_headers(BINDING_EVENT, EVENT_SOURCE, ce_id)
        await producer.send(OutgoingRecord(BINDINGS, row["wallet"], record, headers))
        await producer.send(OutgoingRecord(BINDINGS, row["wallet"], None))
        BINDING_CHANGES.labels("unbound").inc()


def _record(row: Any) -> dict[str, Any]:
    return {
        "wallet": row["wallet"],
        "person": row["person"],
        "issuer": row["issuer"],
        "expires_at": events.rfc3339(row["expires_at"]),
        "bound_at": events.rfc3339(row["bound_at"]),
        "binding": row["binding"],
    }


@router.post(
    "/bindings",
    status_code=201,
    tags=["bindings"],
    summary="Bind a wallet to a person: the wallet-signed presentation of a resident credential (key binding "
    "audience smartcity:bindings, nonce the wallet); published to city.bindings.v1. A wallet already bound "
    "answers 200 with its binding.",
    response_model=models.BindingAnswer,
    responses={**BOUND_BEFORE, **problems(SIGNED, REFUSALS, UNAVAILABLE)},
    openapi_extra=raw_body(
        "defs.v1.binding",
        models.REQUESTS["binding"],
        signers=[signed_by("wallet")],
        description="Besides its shape, a 422 says why the presentation does not do (credential-expired, "
        "not-a-resident-credential, invalid-presentation with reason).",
    ),
)
async def bind_wallet(request: Request, response: Response) -> dict[str, Any]:
    body = await read_json_body(request, _settings(request).max_body_bytes)
    return await _bind(request, body, response)


@router.post(
    "/custodial-wallets/{did_value}/binding",
    status_code=201,
    tags=["bindings"],
    summary="Bind a custodial wallet to its holder at a kiosk, with their PIN: the city presents the credential "
    "it keeps for them and signs the request with their key",
    response_model=models.BindingAnswer,
    responses={
        **BOUND_BEFORE,
        **PIN_PROBLEMS,
        **problems((404, "The city keeps no valid credential for the did"), REFUSALS),
    },
    openapi_extra=raw_body(PinBody, models.PIN),
)
async def bind_custodial(did_value: str, request: Request, response: Response) -> dict[str, Any]:
    body = await _body(request, PinBody)
    person, credential = await _custodial_credential(request, did_value, body.pin)
    return await _bind(request, bindings.binding_request(credential, person, person, _now()), response)
