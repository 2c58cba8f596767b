"""Ledger HTTP routes of authority: the root key and role holders in force, and root-signed commands."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.common.events import now_rfc3339 as _now
from services.common.http import Problem
from services.ledger import authority
from services.ledger.api.routes import REJECTION_STATUS, body_doc, get_store, receipt_json, signed_body
from services.ledger.store import LedgerStore
from services.ledger.transactions import RejectedError

router = APIRouter(prefix="/v1", tags=["authority"])

AUTHORITY_SCHEMA = "authority-commands.v1.json"
AUTHORITY_STATUS = {"not-the-root": 403, "no-root": 409, "not-held": 409, "unknown-role": 422, "bad-key": 422}


@router.get("/authority", summary="The root key and every role's holders in force (the fold of the chain)")
async def current_authority(store: LedgerStore = Depends(get_store)) -> dict[str, Any]:
    return (await store.authority()).as_json()


@router.post(
    "/authority/commands",
    status_code=201,
    summary="Grant or revoke a role, or rotate the root key: a command signed by the root key in force",
    openapi_extra=body_doc(AUTHORITY_SCHEMA),
)
async def authority_command(request: Request, response: Response) -> dict[str, Any]:
    body = await signed_body(request, AUTHORITY_SCHEMA)
    now = _now()
    tx_id = authority.command_tx_id(body["root"], body["nonce"])
    try:
        receipt = await get_store(request).submit_authority(
            body, tx_id, lambda held, last: authority.plan_command(body, held, last, now)
        )
    except RejectedError as exc:
        status = AUTHORITY_STATUS.get(exc.code) or REJECTION_STATUS.get(exc.code, 409)
        raise Problem(status, exc.code, exc.detail) from exc
    response.status_code = 201 if receipt.created else 200
    return receipt_json(receipt)
