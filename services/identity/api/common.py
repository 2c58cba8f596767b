"""What every identity route shares: the request's settings, store and clock, checks of signed requests, and
the bodies of PIN requests. Every mutation, and every read of a person's own data, is a signed request (or, for
a custodial wallet, the person's PIN)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.common.bindings import RESIDENT_VCT as RESIDENT_VCT  # the credential type, re-exported
from services.common.http import Problem, read_json_body, unavailable
from services.common.openapi import problems
from services.identity import requests
from services.identity.requests import RequestError, Signed
from services.identity.settings import IdentitySettings
from services.identity.store import (
    IdentityStore,
)

STATUS_LIST = "resident"
CONSENT_EVENT = "city.consent.v1"
BINDING_EVENT = "city.binding.v1"
EVENT_SOURCE = "smartcity/identity"
NOTICE_PAGE = 100

S = TypeVar("S", bound=Signed)


def _now() -> datetime:
    return datetime.now(UTC)


def _settings(request: Request) -> IdentitySettings:
    return request.app.state.settings


def _store(request: Request) -> IdentityStore:
    return request.app.state.store


def _unavailable(request: Request, exc: Exception) -> Problem:
    return unavailable(exc, _settings(request).retry_after_s)


def _invalid(exc: ValidationError) -> RequestValidationError:
    # The shared handler answers it as a 422 problem naming the fields.
    return RequestValidationError(exc.errors(include_url=False, include_context=False))


def _check(
    request: Request,
    model: type[S],
    obj: Any,
    signer: str,
    role: list[str] | None = None,
    role_name: str = "",
) -> S:
    """`obj` as a checked signed request of `model`, or the problem (422, 400 signature/stale, 403 role)."""
    settings = _settings(request)
    try:
        return requests.check(
            model, obj, signer, now=_now(), skew_s=settings.request_skew_s, role=role, role_name=role_name
        )
    except ValidationError as exc:
        raise _invalid(exc) from exc
    except RequestError as exc:
        raise Problem(exc.status, exc.kind, exc.detail) from exc


async def _signed(
    request: Request, model: type[S], signer: str, role: list[str] | None = None, role_name: str = ""
) -> tuple[S, dict[str, Any]]:
    """The body as a checked signed request of `model`, and the body itself."""
    body = await read_json_body(request, _settings(request).max_body_bytes)
    return _check(request, model, body, signer, role, role_name), body


SIGNED = (400, "Not signed by the key it names (invalid-signature), or issued_at not recent (stale-request)")
ROLE = (403, "The signer does not hold the role (forbidden)")
UNAVAILABLE = 503
PIN_PROBLEMS = problems(
    (
        403,
        "The PIN does not open a wallet of this did (wrong-pin, with attempts_left); a did without one is "
        "answered alike",
    ),
    (423, "Too many wrong PINs (wallet-locked, with locked_until)"),
    UNAVAILABLE,
)
"""What every PIN route answers besides its own (`api.wallets._open_wallet`); its 422 (invalid-pin, invalid-did)
is its body's."""


class PinBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    pin: str = Field(description="The person's PIN (4 to 12 digits).")


class EnrolmentBody(PinBody):
    enrolment: dict[str, Any] = Field(description="The caseworker's signed enrolment request.")


class CustodialPresentationBody(PinBody):
    disclose: list[str] = Field(description="The claims to disclose, nothing else.")
    nonce: str = Field(min_length=1, max_length=200)
    audience: str = Field(min_length=1, max_length=500)


class VerifyBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    presentation: str = Field(
        min_length=1, max_length=32 * 1024, description="SD-JWT with a key-binding JWT."
    )
    nonce: str = Field(min_length=1, max_length=200, description="The nonce the verifier gave the holder.")
    audience: str = Field(min_length=1, max_length=500, description="The verifier's identifier.")


M = TypeVar("M", bound=BaseModel)


async def _body(request: Request, model: type[M]) -> M:
    body = await read_json_body(request, _settings(request).max_body_bytes)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _invalid(exc) from exc
