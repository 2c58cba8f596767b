"""Ingest HTTP routes for a person's reward decisions (why a reading earned what it did, or nothing): signed
reads (`services.common.signed_reads`) by the wallet's holder or a city operator (``INGEST_OPERATORS``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from services.common.http import Problem
from services.common.openapi import problems
from services.common.signed_reads import authorise, signed_reader
from services.ingest.api import models
from services.ingest.api.routes import INVALID_DID, UNAVAILABLE, _check_did, _dependencies_answer
from services.ingest.decisions import MAX_PAGE, Cursor, CursorError, DecisionStore

router = APIRouter(prefix="/v1", tags=["decisions"])

WHAT = "reward decisions"
FORBIDDEN = (403, "The reader is neither the wallet nor a city operator")


def _store(request: Request) -> DecisionStore:
    return request.app.state.decisions


@router.get(
    "/wallets/{wallet}/decisions",
    summary="The reward decisions on the wallet's readings, newest first (by the reading's time): the outcome, "
    "the rewards by rule and the reasons a reading earned nothing or less; a signed read by the wallet's "
    "holder or a city operator",
    response_model=models.Decisions,
    response_model_exclude_unset=True,
    responses=problems(
        (400, "Not an Ed25519 did:key (invalid-did), or a cursor that is no next_before (invalid-cursor)"),
        FORBIDDEN,
        UNAVAILABLE,
    ),
)
async def wallet_decisions(
    wallet: str,
    request: Request,
    before: str | None = Query(
        default=None, max_length=100, description="next_before of the previous page: older decisions only."
    ),
    limit: int = Query(default=100, ge=1, le=MAX_PAGE),
    reader: str = Depends(signed_reader),
) -> dict[str, Any]:
    _check_did(wallet)
    authorise(reader, wallet, request.app.state.operators, what=WHAT)
    try:
        cursor = Cursor.parse(before) if before is not None else None
    except CursorError as exc:
        raise Problem(400, "invalid-cursor", str(exc)) from exc
    async with _dependencies_answer(request):
        found, following = await _store(request).of_wallet(wallet, cursor, limit)
    return {
        "wallet": wallet,
        "decisions": found,
        "next_before": following.text() if following is not None else None,
    }


@router.get(
    "/wallets/{wallet}/decisions/{reading_id}",
    summary="The reward decision on one reading of the wallet; a signed read by its holder or a city operator",
    response_model=models.Decision,
    response_model_exclude_unset=True,
    responses=problems(
        INVALID_DID, FORBIDDEN, (404, "No decision on that reading of the wallet (yet)"), UNAVAILABLE
    ),
)
async def wallet_decision(
    wallet: str, reading_id: str, request: Request, reader: str = Depends(signed_reader)
) -> dict[str, Any]:
    _check_did(wallet)
    authorise(reader, wallet, request.app.state.operators, what=WHAT)
    async with _dependencies_answer(request):
        found = await _store(request).get(wallet, reading_id)
    if found is None:
        raise Problem(404, "not-found", f"No decision on reading {reading_id} of {wallet}.")
    return found
