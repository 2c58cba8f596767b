"""Ledger HTTP routes of authority: the root key and role holders in force, and root-signed commands."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.common.events import now_rfc3339 as _now
from services.common.openapi import problems
from services.ledger import authority
from services.ledger.api import models
from services.ledger.api.routes import (
    BAD_SIGNATURE,
    RECEIPT_AGAIN,
    answered,
    get_store,
    rejection,
    signed_body,
    signed_object_body,
)
from services.ledger.store import LedgerStore
from services.ledger.transactions import RejectedError

router = APIRouter(prefix="/v1", tags=["authority"])

AUTHORITY_SCHEMA = "authority-commands.v1.json"


@router.get(
    "/authority",
    summary="The root key and every role's holders in force (the fold of the chain)",
    response_model=models.Authority,
)
async def current_authority(store: LedgerStore = Depends(get_store)) -> dict[str, Any]:
    return (await store.authority()).as_json()


@router.post(
    "/authority/commands",
    status_code=201,
    summary="Grant or revoke a role, or rotate the root key: a command signed by the root key in force",
    response_model=models.Receipt,
    responses={
        **RECEIPT_AGAIN,
        **problems(
            BAD_SIGNATURE,
            (403, "Not signed by the root key in force (not-the-root)"),
            (409, "A used or stale nonce"),
        ),
    },
    openapi_extra=signed_object_body(AUTHORITY_SCHEMA, "root", models.EXAMPLE_REQUESTS["authority"]),
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
        raise rejection(exc) from exc
    return answered(response, receipt)
