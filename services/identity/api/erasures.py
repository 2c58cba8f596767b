"""A person's erasure (`services.identity.erasures`): asked by a request signed with their did, or at a kiosk
with their PIN (the city then signs the same request with their key); its status by the person's signed read."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field
from sqlalchemy.exc import SQLAlchemyError

from services.common import erasure
from services.common.aid_holder import aid_holder
from services.common.events import now_rfc3339
from services.common.http import Problem, read_json_body
from services.common.kafka import BrokerUnavailableError
from services.common.openapi import answers, problems, raw_body
from services.common.signed_reads import authorise, signed_reader
from services.identity.api import models
from services.identity.api.bindings import publish_unbindings
from services.identity.api.common import (
    PIN_PROBLEMS,
    SIGNED,
    UNAVAILABLE,
    PinBody,
    _body,
    _settings,
    _store,
    _unavailable,
)
from services.identity.api.wallets import _open_wallet
from services.identity.erasures import erasure_status, forward
from services.identity.store import CUSTODIAL

router = APIRouter(prefix="/v1", tags=["erasures"])

ANSWERS = {
    **answers(
        models.Erasure, description="Completed: identity, ingest and the ledger each erased their part"
    ),
    **answers(
        models.Erasure,
        status=202,
        description="Recorded and identity's part erased; ingest's or the ledger's is retried until done",
    ),
}


class ErasureBody(PinBody):
    close_wallet: bool = Field(
        default=False,
        description="Also close the custodial wallet: the city deletes its sealed copy of the key, and funds "
        "left in it can no longer be spent (export the key first to keep them).",
    )


async def _erase(
    request: Request,
    response: Response,
    signed: dict[str, Any],
    asked: erasure.ErasureRequest,
    request_id: str,
) -> dict[str, Any]:
    """Record the checked request with identity's own erasure (once per request), which removes the wallet's
    binding from city.bindings.v1 too (`publish_unbindings`), forward it to ingest and the ledger, and answer
    its status: 200 once complete, else 202 (503, nothing recorded, if the broker did not take the removal)."""
    store = _store(request)
    try:
        row, _ = await store.record_erasure(
            request_id, asked.did, signed, asked.close_wallet, partial(publish_unbindings, request)
        )
        if row["completed_at"] is None:
            row = await forward(store, request.app.state.erasure_services, row)
    except (BrokerUnavailableError, SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    response.status_code = 200 if row["completed_at"] else 202
    return erasure_status(row)


@router.post(
    "/erasures",
    status_code=202,
    summary="A person asks the city to erase their personal data (signed by their did): identity's rows now, "
    "then ingest's and the ledger's; the chain keeps only commitments and still verifies",
    response_model=models.Erasure,
    responses={
        **ANSWERS,
        **problems(
            SIGNED,
            (409, "The did's key is held by the city (custodial-identity): ask at a kiosk with the PIN"),
            (503, "The database or the broker did not answer: nothing was recorded"),
        ),
    },
    openapi_extra=raw_body(erasure.ErasureRequest, erasure.EXAMPLE_REQUEST, signers=erasure.SIGNERS),
)
async def request_erasure(request: Request, response: Response) -> dict[str, Any]:
    body = await read_json_body(request, _settings(request).max_body_bytes)
    asked, request_id = erasure.checked(body, max_age_s=_settings(request).request_skew_s)
    try:
        identity = await _store(request).identity(asked.did)
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    if identity is not None and identity["custody"] == CUSTODIAL:
        raise Problem(
            409,
            "custodial-identity",
            "The city holds this did's key: its holder asks at a kiosk with their PIN "
            "(POST /v1/custodial-wallets/{did}/erasure).",
        )
    return await _erase(request, response, body, asked, request_id)


@router.post(
    "/custodial-wallets/{did_value}/erasure",
    status_code=202,
    tags=["identities"],
    summary="A custodial person asks for erasure at a kiosk with their PIN: the city signs their request with "
    "their key (an erasure still in progress is answered instead of a new one)",
    response_model=models.Erasure,
    responses={**ANSWERS, **PIN_PROBLEMS},
    openapi_extra=raw_body(ErasureBody, models.REQUESTS["custodial-erasure"]),
)
async def request_custodial_erasure(did_value: str, request: Request, response: Response) -> dict[str, Any]:
    body = await _body(request, ErasureBody)
    person, _ = await _open_wallet(request, did_value, body.pin)
    store = _store(request)
    try:
        ongoing = await store.open_erasure(person.did)
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    signed = (
        dict(ongoing["request"])
        if ongoing is not None
        else erasure.sign_request(
            person,
            {
                "did": person.did,
                "action": erasure.ACTION,
                "close_wallet": body.close_wallet,
                "issued_at": now_rfc3339(),
            },
            aid_holder(person),  # the memos of their AID payments go too
        )
    )
    asked, request_id = erasure.checked(signed, max_age_s=erasure.RETRY_WINDOW_S)
    return await _erase(request, response, signed, asked, request_id)


@router.get(
    "/erasures/{request_id}",
    summary="An erasure's status: when identity, ingest and the ledger each completed; a signed read by the "
    "person who asked",
    response_model=models.Erasure,
    responses=problems(
        (403, "Not the signed read of the person who asked"), (404, "No such request"), UNAVAILABLE
    ),
)
async def erasure_of(
    request_id: str, request: Request, reader: str = Depends(signed_reader)
) -> dict[str, Any]:
    try:
        row = await _store(request).erasure(request_id)
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    if row is None:
        raise Problem(404, "not-found", f"No erasure request {request_id}.")
    authorise(reader, row["did"], (), what="erasure request")
    return erasure_status(row)
