"""Ingest's part of a person's erasure (`services.ingest.erasures`): the person's own signed request, which
identity forwards as the person signed it; ingest checks the signature itself."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from services.common import erasure
from services.common.http import read_json_body
from services.common.openapi import answers, problems
from services.ingest.api import models
from services.ingest.api.routes import UNAVAILABLE, _dependencies_answer
from services.ingest.erasures import ErasureStore
from services.ingest.settings import IngestSettings

router = APIRouter(prefix="/v1", tags=["erasures"])


@router.post(
    "/erasures",
    status_code=201,
    summary="Erase a person's data at ingest on their signed request: their devices are revoked and their "
    "registrations' personal details and their wallet's reward decisions are dropped",
    openapi_extra=erasure.forwarded_request_body(),
    response_model=models.Erasure,
    responses={
        **answers(models.Erasure, description="The same request was done before: its answer"),
        **problems(
            (400, "Not signed by the did it names (or not in its one canonical text), or stale"), UNAVAILABLE
        ),
    },
)
async def erase(request: Request, response: Response) -> dict[str, Any]:
    settings: IngestSettings = request.app.state.settings
    body = await read_json_body(request, settings.max_body_bytes)
    asked, request_id = erasure.checked(body, max_age_s=erasure.RETRY_WINDOW_S)
    store: ErasureStore = request.app.state.erasures
    async with _dependencies_answer(request):
        answer, erased = await store.erase(asked, request_id, body)
    response.status_code = 201 if erased else 200
    return answer
