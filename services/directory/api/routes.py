"""Directory HTTP routes: merchant registrations, listing and lookup."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from services.common.didkey import DidKeyError, decode
from services.common.http import Problem, read_json_body
from services.common.kafka import BrokerUnavailableError, KafkaProducer
from services.common.signing import SignatureError
from services.directory import merchants
from services.directory.categories import CATEGORIES, is_category
from services.directory.merchants import Merchant, MerchantRegistration
from services.directory.metrics import MERCHANT_REGISTRATIONS
from services.directory.settings import DirectorySettings
from services.directory.store import MerchantStore

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1")


def _unavailable(request: Request, exc: Exception) -> Problem:
    """A 503 the client may retry, for a database or broker that did not answer."""
    settings: DirectorySettings = request.app.state.settings
    retry = {"Retry-After": str(settings.retry_after_s)}
    if isinstance(exc, BrokerUnavailableError):
        log.warning("broker did not acknowledge: %s", exc)
        return Problem(
            503,
            "broker-unavailable",
            "The broker did not acknowledge; nothing was stored, retry.",
            headers=retry,
        )
    log.warning("database unavailable: %s", exc)
    return Problem(503, "database-unavailable", "The database did not answer; retry.", headers=retry)


@router.post(
    "/merchants",
    status_code=201,
    tags=["merchants"],
    summary="Register a merchant, or update it (signed by the merchant's wallet)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": MerchantRegistration.model_json_schema()}},
        }
    },
    responses={200: {"description": "The merchant was registered before and is updated"}},
)
async def register_merchant(request: Request, response: Response) -> dict[str, Any]:
    settings: DirectorySettings = request.app.state.settings
    body = await read_json_body(request, settings.max_body_bytes)
    store: MerchantStore = request.app.state.store
    producer: KafkaProducer = request.app.state.producer
    try:
        registration = merchants.check_registration(body)
    except ValidationError as exc:
        MERCHANT_REGISTRATIONS.labels("invalid").inc()
        # The shared handler answers it as a 422 problem naming the fields.
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from exc
    except SignatureError as exc:
        MERCHANT_REGISTRATIONS.labels("bad_signature").inc()
        raise Problem(
            400, "invalid-signature", f"The registration is not signed by its wallet: {exc}"
        ) from exc

    async def publish(merchant: Merchant) -> None:
        await producer.send(merchants.outgoing_record(merchant))

    try:
        merchant, created = await store.register(registration, body, publish)
    except (BrokerUnavailableError, SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    MERCHANT_REGISTRATIONS.labels("created" if created else "updated").inc()
    response.status_code = 201 if created else 200
    return merchant.as_json()


@router.get("/merchants", tags=["merchants"], summary="Merchants by name, optionally of one category")
async def list_merchants(
    request: Request,
    limit: Annotated[
        int | None, Query(ge=1, description="Page size (default and maximum: see settings).")
    ] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    category: Annotated[str | None, Query(description=f"One of: {', '.join(CATEGORIES)}.")] = None,
) -> dict[str, Any]:
    settings: DirectorySettings = request.app.state.settings
    store: MerchantStore = request.app.state.store
    if category is not None and not is_category(category):
        raise Problem(
            422, "unknown-category", f"Unknown category {category!r}; one of {', '.join(CATEGORIES)}."
        )
    if limit is None:
        limit = settings.default_page_size
    if limit > settings.max_page_size:
        raise Problem(422, "invalid-request", f"limit: at most {settings.max_page_size}.")
    try:
        page, total = await store.page(limit, offset, category)
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    return {"merchants": [m.as_json() for m in page], "total": total, "limit": limit, "offset": offset}


@router.get("/merchants/{wallet}", tags=["merchants"], summary="A merchant by wallet")
async def get_merchant(wallet: str, request: Request) -> dict[str, Any]:
    try:
        decode(wallet)
    except DidKeyError as exc:
        raise Problem(400, "invalid-did", f"{wallet!r} is not an Ed25519 did:key: {exc}") from exc
    store: MerchantStore = request.app.state.store
    try:
        merchant = await store.get(wallet)
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    if merchant is None:
        raise Problem(404, "not-found", f"No merchant {wallet} is registered.")
    return merchant.as_json()


@router.get("/categories", tags=["merchants"], summary="The merchant categories and what they cover")
async def list_categories() -> dict[str, dict[str, str]]:
    return {"categories": CATEGORIES}
