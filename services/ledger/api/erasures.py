"""The ledger's part of a person's erasure (`services.ledger.erasures`): the person's own signed request, which
identity forwards as the person signed it; the ledger checks the signature itself."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from services.common import erasure
from services.common.http import read_json_body
from services.common.openapi import answers, problems
from services.ledger.api import models
from services.ledger.api.routes import get_store
from services.ledger.erasures import Erasures

router = APIRouter(prefix="/v1", tags=["audit"])

MAX_BODY_BYTES = 16 * 1024


@router.post(
    "/erasures",
    status_code=201,
    summary="Erase the evidence of the rewards that paid a wallet, on its holder's signed request; the chain "
    "keeps their commitments and still verifies",
    openapi_extra=erasure.forwarded_request_body(),
    response_model=models.Erasure,
    response_model_exclude_unset=True,
    responses={
        **answers(models.Erasure, description="The same request was done before: its answer"),
        **problems((400, "Not signed by the did it names (or not in its one canonical text), or stale")),
    },
)
async def erase(request: Request, response: Response) -> dict[str, Any]:
    body = await read_json_body(request, MAX_BODY_BYTES)
    asked, request_id = erasure.checked(body, max_age_s=erasure.RETRY_WINDOW_S)
    answer, erased = await Erasures(get_store(request)).erase(asked, request_id, body)
    response.status_code = 201 if erased else 200
    return answer
