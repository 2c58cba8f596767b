"""PIN resets: a caseworker gives a person who forgot their PIN a new one, on a re-proof of the person. The did,
the funds and the credentials stay; wrong-PIN locks are lifted; each reset is recorded with its signed order."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError

from services.common import events, sdjwt
from services.common.http import Problem
from services.common.openapi import answers, problems, raw_body, signed_by
from services.identity import custody, requests
from services.identity.api import models
from services.identity.api.common import (
    RESIDENT_VCT,
    UNAVAILABLE,
    _body,
    _check,
    _now,
    _settings,
    _store,
    _unavailable,
)
from services.identity.api.credentials import _status_uri
from services.identity.api.wallets import _pin

router = APIRouter(prefix="/v1")


class PinResetBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    order: dict[str, Any] = Field(description="The caseworker's signed reset order (action reset-pin).")
    new_pin: str = Field(description="The person's new PIN (4 to 12 digits), chosen by them at the desk.")


@router.post(
    "/custodial-wallets/{did_value}/pin-reset",
    status_code=201,
    tags=["identities"],
    summary="A caseworker resets a custodial wallet's PIN on a re-proof of the person (photo or credential)",
    response_model=models.PinReset,
    responses={
        **answers(models.PinReset, description="This order was carried out before: nothing changed again"),
        **problems(
            (
                400,
                "The order is not signed by its caseworker or not recent, or the credential shown does not "
                "verify (presentation-<reason>)",
            ),
            (403, "The signer is not a caseworker, or the re-proof does not match (proof-mismatch)"),
            (404, "The city holds no wallet of the did"),
            (409, "The wallet has no recovery copy (no-recovery-copy)"),
            UNAVAILABLE,
        ),
    },
    openapi_extra=raw_body(
        PinResetBody, models.REQUESTS["pin-reset"], signers=[signed_by("caseworker", at="order")]
    ),
)
async def reset_pin(did_value: str, request: Request, response: Response) -> dict[str, Any]:
    settings = _settings(request)
    body = await _body(request, PinResetBody)
    new_pin = _pin(body.new_pin)
    order = _check(request, requests.PinReset, body.order, "caseworker", settings.caseworkers, "caseworker")
    if order.did != did_value:
        raise Problem(422, "did-mismatch", f"The order resets {order.did}, not {did_value}.")
    store = _store(request)
    try:
        wallet = await store.custodial_wallet(did_value)
        kept = await store.custodial_credential(did_value, _now())
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    if wallet is None:
        raise Problem(404, "not-found", f"The city holds no wallet of {did_value}.")
    if wallet["recovery_sealed"] is None:
        raise Problem(
            409,
            "no-recovery-copy",
            "This wallet was enrolled before PIN resets existed: it has no recovery copy. Once the person "
            "opens it with their PIN it can be exported, or re-enrolled.",
        )
    proof = await _checked_proof(request, order, wallet["photo_sha256"], kept)
    app = request.app
    seed = custody.open_recovery(app.state.wallet_key, wallet["recovery_sealed"])
    async with app.state.kdf_slots:  # each Argon2id derivation holds pin_memlimit bytes
        sealed, salt = await asyncio.to_thread(
            custody.seal, app.state.wallet_key, seed, new_pin, app.state.kdf_cost
        )
    try:
        reset_at, done_now = await store.reset_pin(
            did_value, requests.request_id(body.order), order.caseworker, proof, body.order, sealed, salt
        )
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    if not done_now:
        response.status_code = 200
    return {"did": did_value, "proof": proof, "reset_at": events.rfc3339(reset_at)}


async def _checked_proof(
    request: Request, order: requests.PinReset, enrolment_photo: str | None, kept: str | None
) -> str:
    """The kind of re-proof the order gives ("photo" or "credential"), once it holds; the problem if not.

    A photo proof must name a photo on record: the enrolment's, or the one in the resident credential the city
    keeps for the person. A credential proof must be a valid resident credential issued to this did."""
    verifier: sdjwt.Verifier = request.app.state.verifier
    now = int(time.time())
    if isinstance(order.proof, requests.PhotoProof):
        on_record = {enrolment_photo} if enrolment_photo else set()
        if kept is not None:
            try:
                verified, _ = verifier.verify_unbound(kept, now=now, is_revoked=None)
                on_record.add(verified.disclosed.get("photo_sha256"))
            except sdjwt.PresentationError:
                pass  # a kept credential the city no longer trusts names no photo
        if order.proof.photo_sha256 not in on_record:
            raise Problem(
                403, "proof-mismatch", "The photo named is not the photo on record for this wallet."
            )
        return "photo"
    try:
        verified, holder = verifier.verify_unbound(order.proof.credential, now=now, is_revoked=None)
        if verified.status_index is not None:
            if verified.status_uri != _status_uri(_settings(request)):
                raise sdjwt.PresentationError(sdjwt.MALFORMED, "the credential names an unknown status list")
            if await _store(request).is_revoked(verified.status_index):
                raise sdjwt.PresentationError(sdjwt.REVOKED, "the issuer has revoked the credential")
    except sdjwt.PresentationError as exc:
        raise Problem(
            400, f"presentation-{exc.reason}", exc.detail, title="Credential rejected", reason=exc.reason
        ) from exc
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    if verified.vct != RESIDENT_VCT or holder != order.did:
        raise Problem(403, "proof-mismatch", "The credential shown is not a resident credential of this did.")
    return "credential"
