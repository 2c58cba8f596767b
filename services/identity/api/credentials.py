"""Credentials: SD-JWT resident credentials issued and revoked by issuer keys, their status list, and the
verification of presentations."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import SQLAlchemyError

from services.common import events, sdjwt
from services.common.http import Problem
from services.common.openapi import answers, problems, raw_body, signed_by
from services.common.signing import Keypair
from services.identity import requests, statuslist
from services.identity.api import models
from services.identity.api.common import (
    RESIDENT_VCT,
    ROLE,
    SIGNED,
    STATUS_LIST,
    UNAVAILABLE,
    VerifyBody,
    _body,
    _now,
    _settings,
    _signed,
    _store,
    _unavailable,
)
from services.identity.metrics import CREDENTIALS, PRESENTATIONS
from services.identity.settings import IdentitySettings
from services.identity.store import (
    CUSTODIAL,
)

router = APIRouter(prefix="/v1")


def _status_uri(settings: IdentitySettings) -> str:
    return f"{settings.public_url.rstrip('/')}/v1/status-lists/{STATUS_LIST}"


@router.post(
    "/credentials",
    status_code=201,
    tags=["credentials"],
    summary="Issue a resident credential (SD-JWT VC) to a registered person (signed by an issuer-role key)",
    response_model=models.Credential,
    responses=problems(
        SIGNED,
        ROLE,
        (404, "The subject is not a registered identity"),
        (409, "This order was carried out already (already-issued)"),
        UNAVAILABLE,
    ),
    openapi_extra=raw_body(
        requests.CredentialOrder, models.REQUESTS["credential"], signers=[signed_by("issuer")]
    ),
)
async def issue_credential(request: Request) -> dict[str, Any]:
    settings = _settings(request)
    order, body = await _signed(request, requests.CredentialOrder, "issuer", settings.issuers, "issuer")
    store = _store(request)
    city: Keypair = request.app.state.city
    try:
        holder = await store.identity(order.subject)
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    if holder is None:
        raise Problem(404, "not-found", f"{order.subject} is not a registered identity.")
    issued = _now()
    iat, exp = requests.credential_validity(issued, settings.credential_days)
    claims = requests.resident_claims(order.facts, settings.city_name, issued.date())
    credential_id = requests.request_id(body)

    def build(status_index: int) -> str:
        status = {"status_list": {"idx": status_index, "uri": _status_uri(settings)}}
        return sdjwt.issue(city, order.subject, claims, vct=RESIDENT_VCT, iat=iat, exp=exp, status=status)

    try:
        made = await store.add_credential(
            credential_id,
            order.subject,
            vct=RESIDENT_VCT,
            issued_by=order.issuer,
            issued_at=datetime.fromtimestamp(iat, UTC),
            expires_at=datetime.fromtimestamp(exp, UTC),
            build=build,
            keep=holder["custody"] == CUSTODIAL,
        )
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    if made is None:
        raise Problem(
            409, "already-issued", f"This order was carried out already (credential {credential_id})."
        )
    sd_jwt, status_index = made
    CREDENTIALS.labels("issued").inc()
    return {
        "credential_id": credential_id,
        "subject": order.subject,
        "vct": RESIDENT_VCT,
        "status_index": status_index,
        "expires_at": events.rfc3339(datetime.fromtimestamp(exp, UTC)),
        "sd_jwt": sd_jwt,
    }


@router.post(
    "/credentials/{credential_id}/revocation",
    tags=["credentials"],
    summary="Revoke a credential (signed by an issuer-role key); verifiers refuse it from then on",
    response_model=models.Revocation,
    responses=problems(SIGNED, ROLE, (404, "No such credential"), UNAVAILABLE),
    openapi_extra=raw_body(
        requests.RevocationOrder, models.REQUESTS["revocation"], signers=[signed_by("issuer")]
    ),
)
async def revoke_credential(credential_id: str, request: Request) -> dict[str, Any]:
    settings = _settings(request)
    order, _ = await _signed(request, requests.RevocationOrder, "issuer", settings.issuers, "issuer")
    if order.credential_id != credential_id:
        raise Problem(422, "invalid-request", "credential_id: the signed order names another credential.")
    try:
        row = await _store(request).revoke(credential_id, _now())
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    if row is None:
        raise Problem(404, "not-found", f"No credential {credential_id}.")
    CREDENTIALS.labels("revoked").inc()
    return {
        "credential_id": credential_id,
        "status_index": row["status_index"],
        "revoked_at": events.rfc3339(row["revoked_at"]),
    }


@router.get(
    f"/status-lists/{STATUS_LIST}",
    tags=["credentials"],
    summary="The signed status list (Token Status List JWT) of resident credentials: bit set = revoked",
    response_class=Response,
    responses={
        **answers(
            {"type": "string", "description": "A compact JWS (typ statuslist+jwt) signed by the city's key."},
            "eyJhbGciOiJFZERTQSIsInR5cCI6InN0YXR1c2xpc3Qrand0In0.eyJzdWIiOiJodHRwOi8vMTI3LjAuMC4xOjgxMDQvdjEv"
            "c3RhdHVzLWxpc3RzL3Jlc2lkZW50IiwiaWF0IjoxNzczNDgwNDEzLCJ0dGwiOjYwLCJzdGF0dXNfbGlzdCI6eyJiaXRzIjox"
            "LCJsc3QiOiJlTnJiWUFBQUFJRUFnUSJ9fQ.2Qb0v7m1H8Q7lXxG1yYkCq3wJ9rD0s6pQ4bT0uVnP5f8KzR1mS2tL7aB9cD4eF6"
            "gH8iJ0kL2mN4oP6qR8sT0uA",
            media_type="application/statuslist+jwt",
            description="The Token Status List JWT",
        ),
        **problems(UNAVAILABLE),
    },
)
async def status_list(request: Request) -> Response:
    settings = _settings(request)
    try:
        revoked, size = await _store(request).status_list()
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    payload = {
        "sub": _status_uri(settings),
        "iat": int(time.time()),
        "ttl": 60,
        "status_list": statuslist.encode(revoked, size),
    }
    token = sdjwt.sign_jwt(request.app.state.city, {"typ": statuslist.STATUS_LIST_TYP}, payload)
    return Response(token, media_type="application/statuslist+jwt")


@router.post(
    "/presentations/verify",
    tags=["credentials"],
    summary="Verify a presentation (SD-JWT + key binding) and return exactly the claims it discloses",
    response_model=models.VerifiedPresentation,
    responses=problems(
        (
            400,
            "The presentation does not verify: presentation-<reason>, with reason (malformed, "
            "untrusted-issuer, signature, expired, revoked, key-binding, wrong-nonce, wrong-audience, ...)",
        ),
        UNAVAILABLE,
    ),
    openapi_extra=raw_body(VerifyBody, models.REQUESTS["verify"]),
)
async def verify_presentation(request: Request) -> dict[str, Any]:
    settings = _settings(request)
    body = await _body(request, VerifyBody)
    verifier: sdjwt.Verifier = request.app.state.verifier
    try:
        verified = verifier.verify(
            body.presentation, nonce=body.nonce, audience=body.audience, now=int(time.time()), is_revoked=None
        )
        if verified.status_index is not None:
            if verified.status_uri != _status_uri(settings):
                raise sdjwt.PresentationError(sdjwt.MALFORMED, "the credential names an unknown status list")
            if await _store(request).is_revoked(verified.status_index):
                raise sdjwt.PresentationError(sdjwt.REVOKED, "the issuer has revoked the credential")
    except sdjwt.PresentationError as exc:
        PRESENTATIONS.labels(exc.reason).inc()
        raise Problem(
            400, f"presentation-{exc.reason}", exc.detail, title="Presentation rejected", reason=exc.reason
        ) from exc
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    PRESENTATIONS.labels("ok").inc()
    return {
        "issuer": verified.issuer,
        "vct": verified.vct,
        "issued_at": verified.issued_at,
        "expires_at": verified.expires_at,
        "disclosed": verified.disclosed,
    }
