"""Directory HTTP routes: merchant registrations and verifications, listing, lookup, local-first search and
local alternatives to chains."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from services.common.didkey import DidKeyError, decode
from services.common.http import MAX_INT_PARAM, Problem, read_json_body, unavailable
from services.common.kafka import BrokerUnavailableError
from services.common.openapi import answers, problems, raw_body, signed_by
from services.common.signing import SignatureError
from services.directory import hours, merchants
from services.directory.api import models
from services.directory.categories import CATEGORIES, categories_for, is_category
from services.directory.merchants import (
    Merchant,
    MerchantRegistration,
    MerchantVerification,
    NotAVerifierError,
    StaleRegistrationError,
)
from services.directory.metrics import MERCHANT_REGISTRATIONS, MERCHANT_VERIFICATIONS, SEARCHES
from services.directory.publishing import MerchantPublisher
from services.directory.search import Location, SearchQuery
from services.directory.settings import DirectorySettings
from services.directory.store import MerchantStore, SearchHit, StaleVerificationError, UnknownMerchantError

router = APIRouter(prefix="/v1")

UNAVAILABLE = (503, "The database or the broker did not answer: nothing was stored, retry after Retry-After")


def _unavailable(request: Request, exc: Exception) -> Problem:
    settings: DirectorySettings = request.app.state.settings
    return unavailable(exc, settings.retry_after_s)


@router.post(
    "/merchants",
    status_code=201,
    tags=["merchants"],
    summary="Register a merchant, or update it (signed by the merchant's wallet)",
    response_model=models.Merchant,
    response_model_exclude_unset=True,
    responses={
        **answers(models.Merchant, description="The merchant was registered before and is updated"),
        **problems(
            (400, "Malformed JSON, or not signed by its wallet (invalid-signature)"),
            (409, "Older than the registration held (stale-registration)"),
            UNAVAILABLE,
        ),
    },
    openapi_extra=raw_body(MerchantRegistration, models.REGISTRATION, signers=[signed_by("wallet")]),
)
async def register_merchant(request: Request, response: Response) -> dict[str, Any]:
    settings: DirectorySettings = request.app.state.settings
    body = await read_json_body(request, settings.max_body_bytes)
    store: MerchantStore = request.app.state.store
    publisher: MerchantPublisher = request.app.state.publisher
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
        await publisher.publish([merchant])

    try:
        merchant, created = await store.register(registration, body, publish)
    except StaleRegistrationError as exc:
        MERCHANT_REGISTRATIONS.labels("stale").inc()
        raise Problem(
            409, "stale-registration", f"The registration is older than the one held: {exc}."
        ) from exc
    except (BrokerUnavailableError, SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    MERCHANT_REGISTRATIONS.labels("created" if created else "updated").inc()
    response.status_code = 201 if created else 200
    return merchant.as_json()


@router.get(
    "/merchants",
    tags=["merchants"],
    summary="Merchants by name, optionally of one category",
    response_model=models.MerchantPage,
    response_model_exclude_unset=True,
    responses=problems(UNAVAILABLE),
)
async def list_merchants(
    request: Request,
    limit: Annotated[
        int | None,
        Query(ge=1, le=MAX_INT_PARAM, description="Page size (default and maximum: see settings)."),
    ] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_INT_PARAM)] = 0,
    category: Annotated[str | None, Query(description=f"One of: {', '.join(CATEGORIES)}.")] = None,
) -> dict[str, Any]:
    settings: DirectorySettings = request.app.state.settings
    store: MerchantStore = request.app.state.store
    if category is not None and not is_category(category):
        raise Problem(
            422, "unknown-category", f"Unknown category {category!r}; one of {', '.join(CATEGORIES)}."
        )
    limit = _page_size(settings, limit)
    try:
        page, total = await store.page(limit, offset, category)
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    return {"merchants": [m.as_json() for m in page], "total": total, "limit": limit, "offset": offset}


@router.get(
    "/merchants/{wallet}",
    tags=["merchants"],
    summary="A merchant by wallet",
    response_model=models.Merchant,
    response_model_exclude_unset=True,
    responses=problems((400, "Not an Ed25519 did:key"), (404, "No such merchant"), UNAVAILABLE),
)
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


@router.get(
    "/categories",
    tags=["merchants"],
    summary="The merchant categories and what they cover",
    response_model=models.Categories,
)
async def list_categories() -> dict[str, dict[str, str]]:
    return {"categories": CATEGORIES}


@router.post(
    "/merchants/{wallet}/verification",
    tags=["merchants"],
    summary="The city verifies a merchant's category and local ownership (signed by a directory-role key)",
    response_model=models.Merchant,
    response_model_exclude_unset=True,
    responses=problems(
        (400, "Malformed JSON, or not signed by its verifier (invalid-signature)"),
        (403, "The signer does not hold the directory role (not-a-verifier)"),
        (404, "No such merchant"),
        (409, "About another registration, or older than the verification held (stale-verification)"),
        UNAVAILABLE,
    ),
    openapi_extra=raw_body(MerchantVerification, models.VERIFICATION, signers=[signed_by("verifier")]),
)
async def verify_merchant(wallet: str, request: Request) -> dict[str, Any]:
    settings: DirectorySettings = request.app.state.settings
    body = await read_json_body(request, settings.max_body_bytes)
    store: MerchantStore = request.app.state.store
    publisher: MerchantPublisher = request.app.state.publisher
    try:
        verification = merchants.check_verification(body, settings.verifier_keys)
    except ValidationError as exc:
        MERCHANT_VERIFICATIONS.labels("invalid").inc()
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from exc
    except NotAVerifierError as exc:
        MERCHANT_VERIFICATIONS.labels("not_a_verifier").inc()
        raise Problem(403, "not-a-verifier", str(exc)) from exc
    except SignatureError as exc:
        MERCHANT_VERIFICATIONS.labels("bad_signature").inc()
        raise Problem(
            400, "invalid-signature", f"The verification is not signed by its verifier: {exc}"
        ) from exc
    if verification.merchant != wallet:
        raise Problem(
            422, "merchant-mismatch", f"The verification is about {verification.merchant}, not {wallet}."
        )

    async def publish(merchant: Merchant) -> None:
        await publisher.publish([merchant])

    try:
        merchant = await store.verify(verification, body, publish)
    except UnknownMerchantError as exc:
        raise Problem(404, "not-found", f"No merchant {wallet} is registered.") from exc
    except StaleVerificationError as exc:
        MERCHANT_VERIFICATIONS.labels("stale").inc()
        raise Problem(409, "stale-verification", f"The verification is stale: {exc}.") from exc
    except (BrokerUnavailableError, SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    MERCHANT_VERIFICATIONS.labels("verified").inc()
    return merchant.as_json()


def _page_size(settings: DirectorySettings, limit: int | None) -> int:
    if limit is None:
        return settings.default_page_size
    if limit > settings.max_page_size:
        raise Problem(422, "invalid-request", f"limit: at most {settings.max_page_size}.")
    return limit


def _location(
    settings: DirectorySettings, lat: float | None, lon: float | None, radius_km: float | None
) -> Location | None:
    if (lat is None) != (lon is None):
        raise Problem(422, "invalid-request", "lat and lon go together.")
    if lat is None or lon is None:
        if radius_km is not None:
            raise Problem(422, "invalid-request", "radius_km needs lat and lon.")
        return None
    if radius_km is not None and radius_km > settings.max_radius_km:
        raise Problem(422, "invalid-request", f"radius_km: at most {settings.max_radius_km}.")
    return Location(lat, lon, settings.default_radius_km if radius_km is None else radius_km)


def _hit_json(hit: SearchHit, minute: int) -> dict[str, Any]:
    """A search result: the merchant's facts, whether it is open at the search's moment, and why it ranks."""
    facts = {k: v for k, v in hit.facts.items() if v is not None}
    schedule = hit.facts["hours"]
    return {
        **facts,
        "distance_km": None if hit.distance_km is None else round(hit.distance_km, 3),
        "open_now": None if schedule is None else hours.is_open(hours.week_ranges(schedule), minute),
        "score": hit.parts.as_json(),
    }


async def _search(request: Request, query: SearchQuery) -> tuple[list[SearchHit], int]:
    settings: DirectorySettings = request.app.state.settings
    store: MerchantStore = request.app.state.store
    try:
        return await store.search(query, settings.ranking)
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc


# No control characters (PostgreSQL text cannot even hold NUL): a 422, not a database error.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
Latitude = Annotated[float | None, Query(ge=-90, le=90, description="Where the person is (degrees).")]
Longitude = Annotated[float | None, Query(ge=-180, le=180)]
Radius = Annotated[
    float | None, Query(gt=0, description="Only merchants this close (km); default from settings.")
]
Limit = Annotated[
    int | None, Query(ge=1, le=MAX_INT_PARAM, description="Page size (default and maximum: see settings).")
]
At = Annotated[
    datetime | None,
    Query(description="The moment open_now refers to and shown for (RFC 3339 with offset); default: now."),
]


def _minute(settings: DirectorySettings, at: datetime | None) -> int:
    if at is not None and at.tzinfo is None:
        raise Problem(422, "invalid-request", "at: give a time zone offset, e.g. 2026-11-21T18:00:00Z.")
    return hours.minute_of_week(at or datetime.now(UTC), settings.timezone)


@router.get(
    "/search",
    tags=["search"],
    summary="Local-first search: text (with typos), distance, category, currency, open now; score parts",
    response_model=models.SearchResults,
    response_model_exclude_unset=True,
    responses=problems(UNAVAILABLE),
)
async def search(
    request: Request,
    q: Annotated[
        str | None,
        Query(max_length=200, pattern=_PRINTABLE, description="What to look for; typos are forgiven."),
    ] = None,
    lat: Latitude = None,
    lon: Longitude = None,
    radius_km: Radius = None,
    category: Annotated[str | None, Query(description=f"One of: {', '.join(CATEGORIES)}.")] = None,
    accepts: Annotated[Literal["CITY", "AID", "CREDIT"] | None, Query(description="A currency.")] = None,
    open_now: Annotated[bool, Query(description="Only merchants open at `at` (default now).")] = False,
    at: At = None,
    limit: Limit = None,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> dict[str, Any]:
    settings: DirectorySettings = request.app.state.settings
    if category is not None and not is_category(category):
        raise Problem(
            422, "unknown-category", f"Unknown category {category!r}; one of {', '.join(CATEGORIES)}."
        )
    minute = _minute(settings, at)
    query = SearchQuery(
        text=(q or "").strip() or None,
        location=_location(settings, lat, lon, radius_km),
        categories=() if category is None else (category,),
        accepts=() if accepts is None else (accepts,),
        at_minute=minute if open_now else None,
        limit=_page_size(settings, limit),
        offset=offset,
    )
    hits, total = await _search(request, query)
    SEARCHES.labels("search").inc()
    return {
        "results": [_hit_json(hit, minute) for hit in hits],
        "total": total,
        "limit": query.limit,
        "offset": offset,
        "ranking": vars(settings.ranking),
    }


@router.get(
    "/alternatives",
    tags=["search"],
    summary="Nearby locally owned merchants for what a person would otherwise buy from a chain",
    response_model=models.Alternatives,
    response_model_exclude_unset=True,
    responses=problems(
        (
            404,
            "Neither a chain in the directory, nor a category, nor a product (unknown-retailer-or-product)",
        ),
        UNAVAILABLE,
    ),
)
async def alternatives(
    request: Request,
    to: Annotated[
        str,
        Query(
            min_length=1,
            max_length=200,
            pattern=_PRINTABLE,
            description="A chain's brand, a category or a product.",
        ),
    ],
    lat: Latitude = None,
    lon: Longitude = None,
    radius_km: Radius = None,
    limit: Limit = None,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> dict[str, Any]:
    settings: DirectorySettings = request.app.state.settings
    store: MerchantStore = request.app.state.store
    categories = categories_for(to)
    if not categories:
        try:
            categories = await store.chain_categories(to.strip())
        except (SQLAlchemyError, OSError) as exc:
            raise _unavailable(request, exc) from exc
    if not categories:
        raise Problem(
            404,
            "unknown-retailer-or-product",
            f"{to!r} is neither a chain in the directory, nor a category, nor a product the taxonomy knows.",
        )
    minute = _minute(settings, None)
    query = SearchQuery(
        location=_location(settings, lat, lon, radius_km),
        categories=tuple(categories),
        local_only=True,
        limit=_page_size(settings, limit),
        offset=offset,
    )
    hits, total = await _search(request, query)
    SEARCHES.labels("alternatives").inc()
    return {
        "to": to,
        "categories": categories,
        "alternatives": [_hit_json(hit, minute) for hit in hits],
        "total": total,
        "limit": query.limit,
        "offset": offset,
    }
