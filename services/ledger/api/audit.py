"""Ledger HTTP routes for auditors: leaves in ranges, every account's balances as of a tree size (an auditor's
signed read: balances are personal) and, public, each currency's totals as of a tree size."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from services.common.events import NDJSON
from services.common.http import MAX_INT_PARAM, Problem
from services.common.openapi import answers, problems
from services.common.signed_reads import signed_reader
from services.ledger.api import models
from services.ledger.api.routes import auditors, get_store
from services.ledger.audit_reads import MAX_BALANCES, MAX_LEAVES, AuditReads
from services.ledger.store import OutOfRangeError

router = APIRouter(prefix="/v1", tags=["audit"])


def get_reads(request: Request) -> AuditReads:
    return AuditReads(get_store(request))


@router.get(
    "/leaves",
    summary=f"The leaves start <= i < end, in order, at most {MAX_LEAVES}: one transaction record per line, "
    "its exact JCS bytes (hash a line to get its leaf hash)",
    response_class=Response,
    responses={
        **answers(
            {"type": "string", "description": "One transaction record (models.TransactionRecord) per line."},
            json.dumps(models.RECORD, separators=(",", ":"), sort_keys=True) + "\n",
            media_type=NDJSON,
            description="The records, one per line, each its exact JCS bytes",
        ),
        **problems((400, "A range out of the tree")),
    },
)
async def leaves(
    start: int = Query(..., ge=0, le=MAX_INT_PARAM),
    end: int = Query(..., ge=1, le=MAX_INT_PARAM),
    reads: AuditReads = Depends(get_reads),
) -> Response:
    try:
        records = await reads.leaves(start, end)
    except OutOfRangeError as exc:
        raise Problem(400, "out-of-range", str(exc)) from exc
    # JCS escapes every control character in strings, so a record never holds a raw line break.
    return Response(b"".join(r + b"\n" for r in records), media_type=NDJSON)


@router.get(
    "/balances",
    summary="Every account's balances as of a tree size: what the postings of its first tree_size leaves sum to "
    "(an auditor's signed read)",
    response_model=models.Balances,
    responses=problems(
        (400, "A tree size beyond the latest"), (403, "The reader does not hold the auditor role")
    ),
)
async def balances(
    request: Request,
    tree_size: int = Query(..., ge=1, le=MAX_INT_PARAM),
    after: str = Query("", max_length=128, description="Accounts after this one (paging)."),
    limit: int = Query(MAX_BALANCES, ge=1, le=MAX_BALANCES),
    reads: AuditReads = Depends(get_reads),
    reader: str = Depends(signed_reader),
) -> dict[str, Any]:
    if reader not in await auditors(get_store(request)):
        raise Problem(
            403, "read-forbidden", f"{reader} does not hold the auditor role: balances are personal."
        )
    try:
        rows = await reads.balances_at(tree_size, after, limit)
    except OutOfRangeError as exc:
        raise Problem(400, "out-of-range", str(exc)) from exc
    accounts: dict[str, dict[str, int]] = {}
    for row in rows:
        accounts.setdefault(row.account, {})[row.currency] = row.balance
    return {
        "tree_size": tree_size,
        "accounts": [{"account": a, "balances": b} for a, b in accounts.items()],
        "next_after": next(reversed(accounts)) if len(accounts) == limit else None,
    }


@router.get(
    "/totals",
    summary="Each currency's totals as of a tree size: what the accounts holding it hold together, and how many "
    "they are (public: no account is named)",
    response_model=models.Totals,
    responses=problems((400, "A tree size beyond the latest")),
)
async def totals(
    tree_size: int = Query(..., ge=1, le=MAX_INT_PARAM), reads: AuditReads = Depends(get_reads)
) -> dict[str, Any]:
    try:
        held = await reads.totals_at(tree_size)
    except OutOfRangeError as exc:
        raise Problem(400, "out-of-range", str(exc)) from exc
    return {"tree_size": tree_size, "totals": held}
