"""Ledger HTTP route of anchors: a Merkle root of another service's signed records, put on the chain by a key
holding the role for it (identity's consent receipts: ``consent-anchor``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.common.events import now_rfc3339 as _now
from services.common.openapi import problems
from services.ledger.anchors import SCHEMA, anchor_transaction
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
from services.ledger.transactions import RejectedError

router = APIRouter(prefix="/v1", tags=["anchors"])


@router.post(
    "/anchors",
    status_code=201,
    summary="Anchor a batch of signed records on the chain (its Merkle root), signed by a key holding the role "
    "for their kind (consent receipts: consent-anchor); 200 with the original receipt for the same anchor again",
    response_model=models.Receipt,
    responses={
        **RECEIPT_AGAIN,
        **problems(
            BAD_SIGNATURE,
            (403, "The anchorer does not hold the role for the kind (role-not-held)"),
            (409, "Refused by the chain's rules (malformed)"),
        ),
    },
    openapi_extra=signed_object_body(SCHEMA, "anchorer", models.EXAMPLE_REQUESTS["anchor"]),
)
async def anchor(request: Request, response: Response) -> dict[str, Any]:
    body = await signed_body(request, SCHEMA)
    try:
        # Once per anchor, if its anchorer holds its role (read under the authority lock, as every settlement).
        receipt = await get_store(request).settle_record(anchor_transaction(body, _now()))
    except RejectedError as exc:
        raise rejection(exc) from exc
    return answered(response, receipt)
