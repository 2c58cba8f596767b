"""Ingest's part of a person's erasure (`services.ingest.erasures`): the person's own signed request, which
identity forwards as the person signed it; ingest checks the signature itself."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from services.common import erasure
from services.common.http import read_json_body
from services.ingest.api.routes import _dependencies_answer
from services.ingest.erasures import ErasureStore
from services.ingest.settings import IngestSettings

router = APIRouter(prefix="/v1", tags=["erasures"])


@router.post(
    "/erasures",
    status_code=201,
    summary="Erase a person's data at ingest on their signed request: their devices are revoked and their "
    "registrations' personal details and their wallet's reward decisions are dropped",
    openapi_extra={"requestBody": erasure.forwarded_request_body()},
    responses={
        200: {"description": "The same request was done before: its answer"},
        400: {"description": "Not signed by the did it names (or not in its one canonical text), or stale"},
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
