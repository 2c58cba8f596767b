"""Consents: a person's signed grant or revocation of a data category, stored and published to
``city.consents.v1`` for ingest and rewards to enforce."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field, field_validator
from sqlalchemy.exc import SQLAlchemyError

from services.common import events, signing
from services.common.consents import ConsentError, ConsentSignatureError, check_consent
from services.common.http import Problem, read_json_body
from services.common.kafka import BrokerUnavailableError, KafkaProducer, OutgoingRecord
from services.common.openapi import problems, raw_body, signed_by
from services.common.signing import Keypair
from services.common.topics import CONSENTS
from services.identity import anchoring, requests
from services.identity.api import models
from services.identity.api.common import (
    CONSENT_EVENT,
    EVENT_SOURCE,
    SIGNED,
    UNAVAILABLE,
    _now,
    _settings,
    _signed,
    _store,
    _unavailable,
)
from services.identity.metrics import CONSENT_CHANGES
from services.identity.store import (
    StaleConsentError,
)

router = APIRouter(prefix="/v1")


def _consent_json(row: Any) -> dict[str, Any]:
    result = {
        "subject": row["subject"],
        "category": row["category"],
        "grantee": row["grantee"],
        "status": row["status"],
        "purpose": row["purpose"],
        "changed_at": events.rfc3339(row["changed_at"]),
        "consent": row["consent"],
        "receipt": row["receipt"],
    }
    if row["until"] is not None:
        result["until"] = events.rfc3339(row["until"])
    return result


@router.post(
    "/consents",
    status_code=201,
    tags=["consents"],
    summary="Grant or revoke a data category to a grantee (signed by the subject); published to city.consents.v1",
    response_model=models.ConsentChange,
    responses=problems(SIGNED, (409, "Not newer than the consent stored (stale-consent)"), UNAVAILABLE),
    openapi_extra=raw_body("defs.v1.consent", models.CONSENT, signers=[signed_by("subject")]),
)
async def change_consent(request: Request) -> dict[str, Any]:
    settings = _settings(request)
    body = await read_json_body(request, settings.max_body_bytes)
    try:
        change = check_consent(body)
    except ConsentSignatureError as exc:
        raise Problem(400, "invalid-signature", str(exc)) from exc
    except ConsentError as exc:
        raise Problem(422, "invalid-consent", str(exc)) from exc
    now = _now()
    if abs((now - change.issued_at).total_seconds()) > settings.request_skew_s:
        raise Problem(400, "stale-request", f"issued_at must be within {settings.request_skew_s} s of now.")
    city: Keypair = request.app.state.city
    producer: KafkaProducer = request.app.state.producer

    def receipt(changed_at: datetime) -> dict[str, Any]:
        made = {
            "issuer": city.did,
            "subject": change.subject,
            "category": change.category,
            "grantee": change.grantee,
            "status": change.status,
            "changed_at": events.rfc3339(changed_at),
            "consent_sha256": signing.sha256_hex(signing.canonical_bytes(dict(change.signed))),
        }
        if change.until is not None:
            made["until"] = events.rfc3339(change.until)
        return city.sign(made)

    async def publish(changed_at: datetime) -> None:
        headers = events.cloudevent_headers(CONSENT_EVENT, EVENT_SOURCE, requests.request_id(change.signed))
        await producer.send(OutgoingRecord(CONSENTS, change.key, change.record(changed_at), headers))

    try:
        made = await _store(request).change_consent(change, receipt, publish, now)
    except StaleConsentError as exc:
        raise Problem(409, "stale-consent", str(exc)) from exc
    except (BrokerUnavailableError, SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    CONSENT_CHANGES.labels(change.status).inc()
    return {"record": change.record(now), "receipt": made, "receipt_id": signing.object_id(made)}


@router.post(
    "/consents/query",
    tags=["consents"],
    summary="A person lists their consents, each with its latest receipt (signed request)",
    response_model=models.Consents,
    response_model_exclude_unset=True,
    responses=problems(SIGNED, UNAVAILABLE),
    openapi_extra=raw_body(
        requests.SelfRequest, models.REQUESTS["list-consents"], signers=[signed_by("did")]
    ),
)
async def list_consents(request: Request) -> dict[str, Any]:
    query, _ = await _signed(request, requests.SelfRequest, "did")
    if query.action != "list-consents":
        raise Problem(422, "invalid-request", "action: must be list-consents.")
    try:
        rows = await _store(request).consents_of(query.did)
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    return {"consents": [_consent_json(row) for row in rows]}


class ReceiptProofRequest(requests.Signed):
    """A person asks where one of their consent receipts is anchored on the chain; signed by their key."""

    did: str
    action: Literal["consent-receipt-proof"]
    receipt_id: requests.Sha256Hex = Field(
        description="sha256 hex of the JCS bytes of the receipt without sig"
    )
    _did = field_validator("did")(requests._did_key)


@router.post(
    "/consents/receipts/proof",
    tags=["consents"],
    summary="A person's consent receipt with its anchor on the chain: the anchor's tx_id, the receipt's leaf "
    "index and inclusion path in the anchored batch (signed request); 409 until it is anchored",
    response_model=models.ReceiptProof,
    responses=problems(
        SIGNED,
        (404, "No such consent receipt of the signer's"),
        (409, "Not anchored yet (not-anchored-yet): ask again shortly"),
        UNAVAILABLE,
    ),
    openapi_extra=raw_body(ReceiptProofRequest, models.REQUESTS["receipt-proof"], signers=[signed_by("did")]),
)
async def receipt_proof(request: Request) -> dict[str, Any]:
    query, _ = await _signed(request, ReceiptProofRequest, "did")
    try:
        row = await anchoring.receipt_proof(request.app.state.engine, query.receipt_id, query.did)
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    if row is None:
        raise Problem(404, "not-found", "No such consent receipt of yours.")
    if row["anchor_tx_id"] is None:
        raise Problem(
            409, "not-anchored-yet", "The receipt is not anchored on the chain yet; ask again shortly."
        )
    return {
        "receipt_id": row["receipt_id"],
        "receipt": row["receipt"],
        "tx_id": row["anchor_tx_id"],
        "anchor": row["anchor"],
        "leaf_index": row["leaf_index"],
        "audit_path": row["path"],
    }
