"""Identity HTTP routes: identities and custodial wallets, credentials and presentations, consents, notices
and service records. Every mutation, and every read of a person's own data, is a signed request (or, for a
custodial wallet, the person's PIN)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from services.common import didkey, events, signing
from services.common.consents import ConsentError, ConsentSignatureError, check_consent
from services.common.didkey import DidKeyError
from services.common.http import Problem, read_json_body, unavailable
from services.common.kafka import BrokerUnavailableError, KafkaProducer, OutgoingRecord
from services.common.signing import Keypair
from services.common.topics import CONSENTS
from services.identity import custody, did, requests, sdjwt, statuslist
from services.identity.metrics import CONSENT_CHANGES, CREDENTIALS, PIN_CHECKS, PRESENTATIONS
from services.identity.requests import RequestError, Signed
from services.identity.settings import IdentitySettings
from services.identity.store import (
    CUSTODIAL,
    IdentityStore,
    StaleConsentError,
    WalletLockedError,
    WrongPinAttemptError,
)

router = APIRouter(prefix="/v1")

RESIDENT_VCT = "https://smartcity.example/credentials/resident/v1"
STATUS_LIST = "resident"
CONSENT_EVENT = "city.consent.v1"
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


def _documented(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a route that reads its body itself (signed objects must be verified as sent)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:  # nested models' $refs point into $defs, which OpenAPI would not resolve
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: inline(v) for k, v in node.items()}
        return [inline(v) for v in node] if isinstance(node, list) else node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline(schema)}}}}


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


# --- identities and custodial wallets ------------------------------------------------------------------


@router.get(
    "/identities/{did_value}",
    tags=["identities"],
    summary="Resolve a did:key to its public key and DID document",
)
async def resolve_identity(did_value: str) -> dict[str, Any]:
    try:
        return did.resolve(did_value)
    except DidKeyError as exc:
        raise Problem(400, "invalid-did", f"{did_value!r} is not an Ed25519 did:key: {exc}") from exc


@router.post(
    "/identities",
    status_code=201,
    tags=["identities"],
    summary="Register a did:key the person controls (signed by that key)",
    openapi_extra=_documented(requests.Registration),
    responses={200: {"description": "Registered before"}},
)
async def register_identity(request: Request, response: Response) -> dict[str, Any]:
    registration, body = await _signed(request, requests.Registration, "did")
    store = _store(request)
    try:
        created = await store.register(registration.did, body)
        identity = await store.identity(registration.did)
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    response.status_code = 201 if created else 200
    return {"did": registration.did, "custody": identity["custody"] if identity else "self"}


@router.post(
    "/custodial-wallets",
    status_code=201,
    tags=["identities"],
    summary="A caseworker enrols a person into a custodial wallet opened by their PIN",
    openapi_extra=_documented(EnrolmentBody),
)
async def enrol(request: Request, response: Response) -> dict[str, Any]:
    settings = _settings(request)
    body = await _body(request, EnrolmentBody)
    pin = _pin(body.pin)
    enrolment = _check(
        request, requests.Enrolment, body.enrolment, "caseworker", settings.caseworkers, "caseworker"
    )
    person = Keypair.generate()
    app = request.app
    async with app.state.kdf_slots:  # each Argon2id derivation holds pin_memlimit bytes
        sealed, salt = await asyncio.to_thread(
            custody.seal, app.state.wallet_key, person.seed, pin, app.state.kdf_cost
        )
    try:
        did, created = await _store(request).enrol(
            person.did,
            sealed,
            salt,
            enrolment.caseworker,
            body.enrolment,
            requests.request_id(body.enrolment),
        )
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    if not created:
        response.status_code = 200  # the same order again: its wallet, not a second one
    return {"did": did, "custody": CUSTODIAL}


def _pin(pin: str) -> str:
    try:
        return custody.check_pin_format(pin)
    except ValueError as exc:
        raise Problem(422, "invalid-pin", str(exc)) from exc


async def _open_wallet(
    request: Request, did_value: str, pin: str, *, export: bool = False
) -> tuple[Keypair, list[str]]:
    """The person's key, if their PIN opens their custodial wallet, and with `export` the credentials the city
    kept for them. Wrong PINs count towards an escalating lockout; a did with no wallet gets the very answer
    a wrong PIN gets (in the same time), so these endpoints do not tell who holds a custodial wallet."""
    settings = _settings(request)
    app = request.app
    pin = _pin(pin)
    if not didkey.is_did_key(did_value):
        raise Problem(422, "invalid-did", f"{did_value!r} is not a did:key.")

    def unseal(sealed: bytes, salt: bytes) -> bytes:
        return custody.unseal(app.state.wallet_key, sealed, salt, pin, app.state.kdf_cost)

    try:
        async with app.state.kdf_slots:  # each Argon2id derivation holds pin_memlimit bytes
            seed, kept = await _store(request).open_wallet(
                did_value,
                unseal,
                lambda: custody.decoy(pin, app.state.kdf_cost),
                now=_now(),
                lockout=settings.lockout,
                export=export,
            )
    except WalletLockedError as exc:
        PIN_CHECKS.labels("locked").inc()
        retry = max(1, int((exc.until - _now()).total_seconds()))
        raise Problem(
            423,
            "wallet-locked",
            "Too many wrong PINs: PINs for this did are refused until the lock ends.",
            headers={"Retry-After": str(retry)},
            locked_until=events.rfc3339(exc.until),
        ) from exc
    except WrongPinAttemptError as exc:
        PIN_CHECKS.labels("wrong").inc()
        raise Problem(
            403,
            "wrong-pin",
            f"The PIN does not open a wallet of this did; {exc.remaining} attempts left.",
            attempts_left=exc.remaining,
        ) from exc
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    PIN_CHECKS.labels("ok").inc()
    return Keypair.from_seed(seed), kept


@router.post(
    "/custodial-wallets/{did_value}/export",
    tags=["identities"],
    summary="Take the key out to the person's own device; the city's copy is deleted",
    openapi_extra=_documented(PinBody),
)
async def export_wallet(did_value: str, request: Request) -> dict[str, Any]:
    body = await _body(request, PinBody)
    person, kept = await _open_wallet(request, did_value, body.pin, export=True)
    return {
        "did": person.did,
        "seed": signing.b64url_encode(person.seed),
        "custody": "self",
        "credentials": kept,
    }


@router.post(
    "/custodial-wallets/{did_value}/presentations",
    tags=["credentials"],
    summary="Present the custodial holder's credential, disclosing only the claims asked for",
    openapi_extra=_documented(CustodialPresentationBody),
)
async def present_custodial(did_value: str, request: Request) -> dict[str, Any]:
    body = await _body(request, CustodialPresentationBody)
    person, _ = await _open_wallet(request, did_value, body.pin)
    try:
        credential = await _store(request).custodial_credential(did_value, _now())
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    if credential is None:
        raise Problem(404, "not-found", f"{did_value} holds no valid credential.")
    try:
        presentation = sdjwt.present(
            credential, body.disclose, person, nonce=body.nonce, audience=body.audience, iat=int(time.time())
        )
    except ValueError as exc:
        raise Problem(422, "unknown-claim", str(exc)) from exc
    return {"presentation": presentation}


@router.post(
    "/custodial-wallets/{did_value}/notices",
    tags=["notices"],
    summary="Read a custodial person's notices at a kiosk, with their PIN",
    openapi_extra=_documented(PinBody),
)
async def read_custodial_notices(did_value: str, request: Request) -> dict[str, Any]:
    body = await _body(request, PinBody)
    await _open_wallet(request, did_value, body.pin)
    return await _notices(request, did_value)


# --- credentials -------------------------------------------------------------------------------------------


def _status_uri(settings: IdentitySettings) -> str:
    return f"{settings.public_url.rstrip('/')}/v1/status-lists/{STATUS_LIST}"


@router.post(
    "/credentials",
    status_code=201,
    tags=["credentials"],
    summary="Issue a resident credential (SD-JWT VC) to a registered person (signed by an issuer-role key)",
    openapi_extra=_documented(requests.CredentialOrder),
)
async def issue_credential(request: Request) -> dict[str, Any]:
    settings = _settings(request)
    order, body = await _signed(request, requests.CredentialOrder, "issuer", settings.issuers, "issuer")
    store = _store(request)
    city: Keypair = request.app.state.city
    try:
        holder = await store.identity(order.subject)
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    if holder is None:
        raise Problem(404, "not-found", f"{order.subject} is not a registered identity.")
    issued = _now()
    iat, exp = requests.credential_validity(issued, settings.credential_days)
    claims = requests.resident_claims(order.facts, settings.city_name, issued.date())
    credential_id = requests.request_id(body)

    def build(status_index: int) -> str:
        status = {"status_list": {"idx": status_index, "uri": _status_uri(settings)}}
        return sdjwt.issue(city, order.subject, claims, vct=RESIDENT_VCT, iat=iat, exp=exp, status=status)

    try:
        made = await store.add_credential(
            credential_id,
            order.subject,
            vct=RESIDENT_VCT,
            issued_by=order.issuer,
            issued_at=datetime.fromtimestamp(iat, UTC),
            expires_at=datetime.fromtimestamp(exp, UTC),
            build=build,
            keep=holder["custody"] == CUSTODIAL,
        )
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    if made is None:
        raise Problem(
            409, "already-issued", f"This order was carried out already (credential {credential_id})."
        )
    sd_jwt, status_index = made
    CREDENTIALS.labels("issued").inc()
    return {
        "credential_id": credential_id,
        "subject": order.subject,
        "vct": RESIDENT_VCT,
        "status_index": status_index,
        "expires_at": events.rfc3339(datetime.fromtimestamp(exp, UTC)),
        "sd_jwt": sd_jwt,
    }


@router.post(
    "/credentials/{credential_id}/revocation",
    tags=["credentials"],
    summary="Revoke a credential (signed by an issuer-role key); verifiers refuse it from then on",
    openapi_extra=_documented(requests.RevocationOrder),
)
async def revoke_credential(credential_id: str, request: Request) -> dict[str, Any]:
    settings = _settings(request)
    order, _ = await _signed(request, requests.RevocationOrder, "issuer", settings.issuers, "issuer")
    if order.credential_id != credential_id:
        raise Problem(422, "invalid-request", "credential_id: the signed order names another credential.")
    try:
        row = await _store(request).revoke(credential_id, _now())
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    if row is None:
        raise Problem(404, "not-found", f"No credential {credential_id}.")
    CREDENTIALS.labels("revoked").inc()
    return {
        "credential_id": credential_id,
        "status_index": row["status_index"],
        "revoked_at": events.rfc3339(row["revoked_at"]),
    }


@router.get(
    f"/status-lists/{STATUS_LIST}",
    tags=["credentials"],
    summary="The signed status list (Token Status List JWT) of resident credentials: bit set = revoked",
    response_class=Response,
)
async def status_list(request: Request) -> Response:
    settings = _settings(request)
    try:
        revoked, size = await _store(request).status_list()
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    payload = {
        "sub": _status_uri(settings),
        "iat": int(time.time()),
        "ttl": 60,
        "status_list": statuslist.encode(revoked, size),
    }
    token = sdjwt.sign_jwt(request.app.state.city, {"typ": statuslist.STATUS_LIST_TYP}, payload)
    return Response(token, media_type="application/statuslist+jwt")


@router.post(
    "/presentations/verify",
    tags=["credentials"],
    summary="Verify a presentation (SD-JWT + key binding) and return exactly the claims it discloses",
    openapi_extra=_documented(VerifyBody),
)
async def verify_presentation(request: Request) -> dict[str, Any]:
    settings = _settings(request)
    body = await _body(request, VerifyBody)
    verifier: sdjwt.Verifier = request.app.state.verifier
    try:
        verified = verifier.verify(
            body.presentation, nonce=body.nonce, audience=body.audience, now=int(time.time()), is_revoked=None
        )
        if verified.status_index is not None:
            if verified.status_uri != _status_uri(settings):
                raise sdjwt.PresentationError(sdjwt.MALFORMED, "the credential names an unknown status list")
            if await _store(request).is_revoked(verified.status_index):
                raise sdjwt.PresentationError(sdjwt.REVOKED, "the issuer has revoked the credential")
    except sdjwt.PresentationError as exc:
        PRESENTATIONS.labels(exc.reason).inc()
        raise Problem(
            400, f"presentation-{exc.reason}", exc.detail, title="Presentation rejected", reason=exc.reason
        ) from exc
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    PRESENTATIONS.labels("ok").inc()
    return {
        "issuer": verified.issuer,
        "vct": verified.vct,
        "issued_at": verified.issued_at,
        "expires_at": verified.expires_at,
        "disclosed": verified.disclosed,
    }


# --- consents ----------------------------------------------------------------------------------------------


def _consent_json(row: Any) -> dict[str, Any]:
    result = {
        "subject": row["subject"],
        "category": row["category"],
        "grantee": row["grantee"],
        "status": row["status"],
        "purpose": row["purpose"],
        "changed_at": events.rfc3339(row["changed_at"]),
        "consent": row["consent"],
        "receipt": row["receipt"],
    }
    if row["until"] is not None:
        result["until"] = events.rfc3339(row["until"])
    return result


@router.post(
    "/consents",
    status_code=201,
    tags=["consents"],
    summary="Grant or revoke a data category to a grantee (signed by the subject); published to city.consents.v1",
)
async def change_consent(request: Request) -> dict[str, Any]:
    settings = _settings(request)
    body = await read_json_body(request, settings.max_body_bytes)
    try:
        change = check_consent(body)
    except ConsentSignatureError as exc:
        raise Problem(400, "invalid-signature", str(exc)) from exc
    except ConsentError as exc:
        raise Problem(422, "invalid-consent", str(exc)) from exc
    now = _now()
    if abs((now - change.issued_at).total_seconds()) > settings.request_skew_s:
        raise Problem(400, "stale-request", f"issued_at must be within {settings.request_skew_s} s of now.")
    city: Keypair = request.app.state.city
    producer: KafkaProducer = request.app.state.producer

    def receipt(changed_at: datetime) -> dict[str, Any]:
        made = {
            "issuer": city.did,
            "subject": change.subject,
            "category": change.category,
            "grantee": change.grantee,
            "status": change.status,
            "changed_at": events.rfc3339(changed_at),
            "consent_sha256": signing.sha256_hex(signing.canonical_bytes(dict(change.signed))),
        }
        if change.until is not None:
            made["until"] = events.rfc3339(change.until)
        return city.sign(made)

    async def publish(changed_at: datetime) -> None:
        headers = events.cloudevent_headers(CONSENT_EVENT, EVENT_SOURCE, requests.request_id(change.signed))
        await producer.send(OutgoingRecord(CONSENTS, change.key, change.record(changed_at), headers))

    try:
        made = await _store(request).change_consent(change, receipt, publish, now)
    except StaleConsentError as exc:
        raise Problem(409, "stale-consent", str(exc)) from exc
    except (BrokerUnavailableError, SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    CONSENT_CHANGES.labels(change.status).inc()
    return {"record": change.record(now), "receipt": made}


@router.post(
    "/consents/query",
    tags=["consents"],
    summary="A person lists their consents, each with its latest receipt (signed request)",
    openapi_extra=_documented(requests.SelfRequest),
)
async def list_consents(request: Request) -> dict[str, Any]:
    query, _ = await _signed(request, requests.SelfRequest, "did")
    if query.action != "list-consents":
        raise Problem(422, "invalid-request", "action: must be list-consents.")
    try:
        rows = await _store(request).consents_of(query.did)
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    return {"consents": [_consent_json(row) for row in rows]}


# --- notices (the routes are in api/notices.py; the inbox is here, for the kiosk read above too) -----------


def _notice_json(row: Any) -> dict[str, Any]:
    notice: dict[str, Any] = {
        "notice_id": row["notice_id"],
        "sender": row["sender"],
        "title": row["title"],
        "body": row["body"],
        "posted_at": events.rfc3339(row["posted_at"]),
        "notice": row["notice"],  # as the sender signed it, to re-verify; its group and expiry included
    }
    if row["group_kind"] is not None:
        notice["group"] = {row["group_kind"]: row["group_value"]}
    if row["expires_at"] is not None:
        notice["expires_at"] = events.rfc3339(row["expires_at"])
    return notice


async def _notices(request: Request, did_value: str) -> dict[str, Any]:
    """`did_value`'s inbox now: their notices and their groups' notices, unexpired, newest first."""
    try:
        rows = await _store(request).notices_for(did_value, _now(), NOTICE_PAGE)
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    return {"notices": [_notice_json(row) for row in rows]}


# --- service records ---------------------------------------------------------------------------------------


@router.post(
    "/service-records",
    status_code=201,
    tags=["service-records"],
    summary="A provider records a service given to a person who consented (signed by a provider-role key)",
    openapi_extra=_documented(requests.ServiceRecord),
    responses={200: {"description": "The same signed record was sent before"}},
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
