"""Service records: providers (shelters...) record a service given to a person, and the day's counts."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.exc import SQLAlchemyError

from services.common.http import Problem
from services.common.openapi import answers, problems, raw_body, signed_by
from services.identity import requests
from services.identity.api import models
from services.identity.api.common import (
    SIGNED,
    UNAVAILABLE,
    _now,
    _settings,
    _signed,
    _store,
    _unavailable,
)

router = APIRouter(prefix="/v1")


@router.post(
    "/service-records",
    status_code=201,
    tags=["service-records"],
    summary="A provider records a service given to a person who consented (signed by a provider-role key)",
    response_model=models.ServiceRecorded,
    responses={
        **answers(models.ServiceRecorded, description="The same signed record was sent before"),
        **problems(
            SIGNED,
            (403, "The signer is not a provider, or the subject has not granted services to it (no-consent)"),
            UNAVAILABLE,
        ),
    },
    openapi_extra=raw_body(
        requests.ServiceRecord, models.REQUESTS["service-record"], signers=[signed_by("provider")]
    ),
)
async def record_service(request: Request, response: Response) -> dict[str, Any]:
    settings = _settings(request)
    record, body = await _signed(request, requests.ServiceRecord, "provider", settings.providers, "provider")
    store = _store(request)
    record_id = requests.request_id(body)
    category = requests.SERVICE_RECORDS_CATEGORY
    try:
        if not await store.consent_allows(record.subject, category, record.provider, _now()):
            raise Problem(
                403,
                "no-consent",
                f"{record.subject} has not granted {category!r} to {record.provider}.",
                reason="no_consent",
            )
        created = await store.record_service(
            record_id, record.provider, record.subject, record.service, date.fromisoformat(record.day)
        )
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    response.status_code = 201 if created else 200
    return {"record_id": record_id}


@router.get(
    "/service-records/counts",
    tags=["service-records"],
    summary="Services given per service and day: counts only, never who",
    response_model=models.ServiceCounts,
    responses=problems(UNAVAILABLE),
)
async def service_counts(
    request: Request,
    since: Annotated[date | None, Query(description="First day (default: 30 days ago).")] = None,
    until: Annotated[date | None, Query(description="Last day (default: today).")] = None,
) -> dict[str, Any]:
    until = until or _now().date()
    since = since or until - timedelta(days=30)
    try:
        rows = await _store(request).service_counts(since, until)
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "counts": [
            {"service": row["service"], "day": row["day"].isoformat(), "count": row["count"]} for row in rows
        ],
    }
