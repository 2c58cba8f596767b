"""A person's request to erase their personal data, as every service it reaches checks it (no I/O).

The person signs ``{"did", "action": "erase", "close_wallet"?, "aid_holder"?, "aid_holder_sig"?, "issued_at",
"sig"}`` with the key of the did whose data it names (a custodial person's is signed by the city with their
key, once their PIN opened it). Their AID holder key (`services.common.aid_holder`), which nothing on the chain
links to their wallet, is named and signs first (``aid_holder_sig``, over the request without either
signature) when its data should go too: the memos of the AID payments it made.
Identity records it and passes the very same signed object on to ingest and the ledger, and each of them
checks the signature itself: no service erases anything on another's word. Its id derives from the signed
bytes, so the same request (however its signature is written) erases once, everywhere.

Identity takes a request only while it is fresh (its request skew); the services it forwards the request to
take it for `RETRY_WINDOW_S` after it was signed, the window in which identity retries what failed: a
replayed request is then the same request again (each service answers it from its record), never a new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.common import didkey, signing
from services.common.consents import parse_time
from services.common.http import Problem
from services.common.openapi import example_key, raw_body, signed_by
from services.common.signing import Keypair

ACTION = "erase"
HOLDER_SIG = "aid_holder_sig"
RETRY_WINDOW_S = 30 * 86400
"""How long after it was signed the services take a person's erasure request: the month the city has to
answer it (GDPR art. 12(3)), within which identity retries each service until it has erased."""
FUTURE_SKEW_S = 300
"""How far ahead of a service's clock a request may be dated."""


class ErasureError(ValueError):
    """A request that is not the person's own (a bad or re-encoded signature), or out of its time window."""

    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail = status, kind, detail


def _did_key(value: str) -> str:
    try:
        didkey.decode(value)
    except didkey.DidKeyError as exc:
        raise ValueError(f"not an Ed25519 did:key: {exc}") from exc
    return value


class ErasureRequest(BaseModel):
    """A person asks the city to erase their personal data; signed by `did`."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)

    did: str = Field(description="The person's did:key (their wallet): whose data is erased; it signs.")
    action: Literal["erase"]
    close_wallet: bool = Field(
        default=False,
        description="A custodial person also closes their wallet: the city deletes its sealed copy of the key "
        "(funds left in it can no longer be spent). No effect on a self-held identity.",
    )
    aid_holder: str | None = Field(
        default=None,
        description="The person's AID holder key, whose data is erased too; it signs (aid_holder_sig).",
    )
    aid_holder_sig: str | None = Field(
        default=None,
        description="base64url Ed25519 signature by aid_holder over the JCS bytes of the object without "
        "aid_holder_sig and sig (it signs first; sig then covers it).",
    )
    issued_at: str = Field(description="RFC 3339 UTC time the request was signed.")
    sig: str = Field(description="base64url Ed25519 signature over the JCS bytes of the object without sig.")

    @field_validator("did")
    @classmethod
    def _did(cls, value: str) -> str:
        return _did_key(value)

    @field_validator("aid_holder")
    @classmethod
    def _aid_holder(cls, value: str | None) -> str | None:
        return None if value is None else _did_key(value)

    @field_validator("issued_at")
    @classmethod
    def _issued_at(cls, value: str) -> str:
        parse_time(value)
        return value


def sign_request(
    person: Keypair, request: Mapping[str, Any], holder: Keypair | None = None
) -> dict[str, Any]:
    """`request` (``did``, ``action``, ``issued_at``, ...) signed by `person`, and first by their AID `holder`
    key when given (naming it)."""
    if holder is None:
        return person.sign(request)
    named = {**request, "aid_holder": holder.did}
    return person.sign(holder.sign(named, HOLDER_SIG, exclude=(signing.SIG_FIELD,)))


def erasure_id(obj: Mapping[str, Any]) -> str:
    """The request's id: 32 hex digits of the SHA-256 of its JCS bytes without ``sig``."""
    return signing.object_id(obj)[:32]


def check_erasure(
    obj: Any, *, now: datetime, max_age_s: int, future_skew_s: int = FUTURE_SKEW_S
) -> tuple[ErasureRequest, str]:
    """The checked request and its id; raises pydantic's ValidationError (the wrong shape) or `ErasureError`:
    400 ``invalid-signature`` unless the did signed it (in the one canonical text of its signature), 400
    ``stale-request`` if signed more than `max_age_s` ago or more than `future_skew_s` ahead."""
    request = ErasureRequest.model_validate(obj)
    try:
        signing.verify(obj, "did")
    except signing.SignatureError as exc:
        raise ErasureError(400, "invalid-signature", f"not signed by did: {exc}") from exc
    if (request.aid_holder is None) != (request.aid_holder_sig is None):
        raise ErasureError(422, "invalid-request", "aid_holder and aid_holder_sig come together")
    if request.aid_holder is not None:
        try:
            signing.verify_detached(obj, "aid_holder", HOLDER_SIG, exclude=(signing.SIG_FIELD,))
        except signing.SignatureError as exc:
            raise ErasureError(400, "invalid-signature", f"not signed by aid_holder: {exc}") from exc
    age = (now - parse_time(request.issued_at)).total_seconds()
    if age > max_age_s or -age > future_skew_s:
        raise ErasureError(
            400, "stale-request", f"issued_at must be at most {max_age_s} s old and not in the future"
        )
    return request, erasure_id(obj)


def checked(body: Any, *, max_age_s: int) -> tuple[ErasureRequest, str]:
    """`check_erasure` of a request body, now, for an HTTP route: its refusals as a 422 (naming the fields) or
    the `ErasureError`'s problem (400 ``invalid-signature``, ``stale-request``)."""
    try:
        return check_erasure(body, now=datetime.now(UTC), max_age_s=max_age_s)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from exc
    except ErasureError as exc:
        raise Problem(exc.status, exc.kind, exc.detail) from exc


EXAMPLE_REQUEST = sign_request(
    example_key("alice"),
    {"did": example_key("alice").did, "action": "erase", "issued_at": "2026-03-14T09:26:53Z"},
)
SIGNERS = (signed_by("did"), signed_by("aid_holder", signature=HOLDER_SIG, excludes=[signing.SIG_FIELD]))
"""Who signs an erasure request: its did, and first its AID holder key when it names one."""


def forwarded_request_body() -> dict[str, Any]:
    """``openapi_extra`` of a service's ``POST /v1/erasures``: the person's signed request, as identity forwards
    it."""
    return raw_body(
        ErasureRequest,
        EXAMPLE_REQUEST,
        signers=SIGNERS,
        description="The person's erasure request, signed by their did (as identity received it).",
    )
