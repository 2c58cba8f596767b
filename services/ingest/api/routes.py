"""Ingest HTTP routes: device registrations and batches of signed readings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.exc import SQLAlchemyError

from services.common import kinds
from services.common.didkey import DidKeyError, decode
from services.common.http import MAX_INT_PARAM, Problem, read_json_body
from services.common.kafka import BrokerUnavailableError
from services.common.signed_reads import may_read, signed_reader
from services.ingest import devices
from services.ingest.checks import Rejection
from services.ingest.metrics import DEVICE_REGISTRATIONS, DEVICE_REVOCATIONS
from services.ingest.pipeline import (
    BindingsUnavailableError,
    ConsentsUnavailableError,
    RateLimitedError,
    ReadingPipeline,
)
from services.ingest.settings import IngestSettings
from services.ingest.store import DeviceStore, RotationError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1")

_SIGNED = {"type": "object", "required": ["sig"], "additionalProperties": True}
REGISTRATION_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                **_SIGNED,
                "description": "A device registration proven by the device (device_sig) and signed by its "
                "owner (sig) (defs.v1.json#/$defs/device_registration); with `replaces`, a key rotation; "
                "with `class`, a city device, whose owner must be a city operator (INGEST_OPERATORS).",
                "required": ["device_id", "owner", "kind", "zone", "device_sig", "sig"],
            }
        }
    },
}
REVOCATION_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                **_SIGNED,
                "description": "A revocation signed by revoked_by: the device's owner or a city operator.",
                "required": ["device_id", "revoked_by", "revoked_at", "sig"],
            }
        }
    },
}
READINGS_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["readings"],
                "properties": {
                    "readings": {
                        "type": "array",
                        "items": {**_SIGNED, "description": "A reading (defs.v1.json#/$defs/reading)."},
                    }
                },
            }
        }
    },
}


def _retry_after(request: Request) -> dict[str, str]:
    settings: IngestSettings = request.app.state.settings
    return {"Retry-After": str(settings.retry_after_s)}


@asynccontextmanager
async def _dependencies_answer(request: Request) -> AsyncIterator[None]:
    """Turn an unreachable database or broker into a 503 the client may retry, not a 500."""
    try:
        yield
    except ConsentsUnavailableError as exc:
        log.warning("consents not known: %s", exc)
        raise Problem(
            503,
            "consents-unavailable",
            "Whose readings the city may take is not known yet (the consent view has not caught up with "
            "the broker); none were accepted, retry the batch.",
            headers=_retry_after(request),
        ) from exc
    except BindingsUnavailableError as exc:
        log.warning("bindings not known: %s", exc)
        raise Problem(
            503,
            "bindings-unavailable",
            "Which person each wallet is bound to is not known yet (the binding view has not caught up with "
            "the broker); none were accepted, retry the batch.",
            headers=_retry_after(request),
        ) from exc
    except BrokerUnavailableError as exc:
        log.warning("broker did not acknowledge: %s", exc)
        raise Problem(
            503,
            "broker-unavailable",
            "The broker did not acknowledge the accepted readings; none were accepted, retry the batch.",
            headers=_retry_after(request),
        ) from exc
    except (SQLAlchemyError, OSError) as exc:
        log.warning("database unavailable: %s", exc)
        raise Problem(
            503, "database-unavailable", "The database did not answer; retry.", headers=_retry_after(request)
        ) from exc


@router.post(
    "/devices",
    status_code=201,
    tags=["devices"],
    summary="Register a device to its owner's wallet (proven by the device, signed by the owner), or rotate "
    "a device's key (`replaces`), or register a city device (`class`, by an operator); repeating it is harmless",
    openapi_extra={"requestBody": REGISTRATION_BODY},
    responses={
        200: {"description": "The same registration was stored before"},
        403: {"description": "A city device (`class`) whose owner is not a city operator"},
        409: {"description": "Registered differently, or `replaces` is not an active device of the owner"},
    },
)
async def register_device(request: Request, response: Response) -> dict[str, Any]:
    settings: IngestSettings = request.app.state.settings
    store: DeviceStore = request.app.state.devices
    body = await read_json_body(request, settings.max_body_bytes)
    try:
        devices.check_registration(body)
    except devices.InvalidRegistrationError as exc:
        DEVICE_REGISTRATIONS.labels("invalid").inc()
        raise Problem(422, "invalid-registration", str(exc)) from exc
    except devices.RegistrationSignatureError as exc:
        DEVICE_REGISTRATIONS.labels("bad_signature").inc()
        raise Problem(400, "invalid-signature", str(exc)) from exc
    try:
        devices.check_city_device(body, request.app.state.operators)
    except devices.OperatorRequiredError as exc:
        DEVICE_REGISTRATIONS.labels("refused").inc()
        raise Problem(403, "operator-required", str(exc)) from exc
    try:
        async with _dependencies_answer(request):
            device, created = await store.register(body)
    except RotationError as exc:
        DEVICE_REGISTRATIONS.labels("conflict").inc()
        raise Problem(409, "rotation-conflict", str(exc)) from exc
    if not created and not devices.same_registration(device.registration, body):
        DEVICE_REGISTRATIONS.labels("conflict").inc()
        other_owner = device.owner != body["owner"]
        raise Problem(
            409,
            "device-conflict",
            "The device is registered to another owner."
            if other_owner
            else "The device is registered differently; registrations cannot be changed (rotate the key "
            "with a new registration that `replaces` it).",
        )
    DEVICE_REGISTRATIONS.labels("created" if created else "repeated").inc()
    response.status_code = 201 if created else 200
    return device.as_json()


@router.get(
    "/devices/{device_id}",
    tags=["devices"],
    summary="A registered device and its signed registration: a signed read by its owner or a city operator",
)
async def get_device(
    device_id: str, request: Request, reader: str = Depends(signed_reader)
) -> dict[str, Any]:
    return (await _stored_device(device_id, request, reader)).as_json()


async def _stored_device(device_id: str, request: Request, reader: str | None = None) -> devices.Device:
    """The device, if registered and, with `reader` (a signed read's did), readable by it: its owner or a city
    operator. To anyone else it does not exist: the same 404, so a device's existence tells nothing."""
    _check_did(device_id)
    store: DeviceStore = request.app.state.devices
    async with _dependencies_answer(request):
        device = await store.get(device_id)
    if device is None or (
        reader is not None and not may_read(reader, device.owner, request.app.state.operators)
    ):
        raise Problem(404, "not-found", f"No device {device_id} is registered.")
    return device


def _check_did(did: str) -> None:
    try:
        decode(did)
    except DidKeyError as exc:
        raise Problem(400, "invalid-did", f"{did!r} is not an Ed25519 did:key: {exc}") from exc


@router.get(
    "/devices",
    tags=["devices"],
    summary="Registered devices: a signed read, of the reader's own devices; a city operator's, of any owner's "
    "or all",
)
async def list_devices(
    request: Request,
    owner: str | None = Query(default=None, description="Default: the reader's own; others' for operators."),
    include_revoked: bool = False,
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0, le=MAX_INT_PARAM),
    reader: str = Depends(signed_reader),
) -> dict[str, Any]:
    if owner is not None:
        _check_did(owner)
    if reader not in request.app.state.operators:
        if owner not in (None, reader):
            raise Problem(403, "read-forbidden", f"{reader} may list only its own devices.")
        owner = reader
    store: DeviceStore = request.app.state.devices
    async with _dependencies_answer(request):
        found = await store.list_devices(owner, include_revoked, limit, offset)
    return {"devices": [device.as_json() for device in found]}


@router.get(
    "/devices/{device_id}/history",
    tags=["devices"],
    summary="The device's chain of keys: every device it replaced and that replaced it, oldest first",
)
async def device_history(
    device_id: str, request: Request, reader: str = Depends(signed_reader)
) -> dict[str, Any]:
    device = await _stored_device(device_id, request, reader)
    store: DeviceStore = request.app.state.devices
    chain = [device]
    async with _dependencies_answer(request):
        # Rotations are rare and chains short; each link is one primary-key read, bounded against cycles.
        while chain[0].replaces and len(chain) < 100:
            previous = await store.get(chain[0].replaces)
            if previous is None:
                break
            chain.insert(0, previous)
        while chain[-1].replaced_by and len(chain) < 100:
            following = await store.get(chain[-1].replaced_by)
            if following is None:
                break
            chain.append(following)
    return {"devices": [d.as_json() for d in chain]}


@router.post(
    "/devices/{device_id}/revocation",
    tags=["devices"],
    summary="Revoke a device (signed by its owner or a city operator); its readings are refused from then on",
    openapi_extra={"requestBody": REVOCATION_BODY},
    responses={403: {"description": "The signer is neither the owner nor a city operator"}},
)
async def revoke_device(device_id: str, request: Request) -> dict[str, Any]:
    settings: IngestSettings = request.app.state.settings
    store: DeviceStore = request.app.state.devices
    body = await read_json_body(request, settings.max_body_bytes)
    device = await _stored_device(device_id, request)
    try:
        devices.check_revocation(body, device, request.app.state.operators)
    except devices.InvalidRegistrationError as exc:
        DEVICE_REVOCATIONS.labels("invalid").inc()
        raise Problem(422, "invalid-revocation", str(exc)) from exc
    except devices.RegistrationSignatureError as exc:
        DEVICE_REVOCATIONS.labels("refused").inc()
        raise Problem(403, "revocation-refused", str(exc)) from exc
    async with _dependencies_answer(request):
        revoked = await store.revoke(device_id, body)
    assert revoked is not None  # registrations are never deleted
    DEVICE_REVOCATIONS.labels("revoked").inc()
    return revoked.as_json()


@router.get("/kinds", tags=["readings"], summary="The reading kinds: units and consent category of each")
async def list_kinds() -> dict[str, Any]:
    return {"kinds": [kind.as_json() for kind in kinds.registry().values()]}


@router.post(
    "/readings",
    status_code=202,
    tags=["readings"],
    summary="Submit a batch of signed readings; each is accepted or rejected on its own",
    openapi_extra={"requestBody": READINGS_BODY},
    responses={
        413: {"description": "The body or the batch is too large"},
        429: {"description": "Every reading that passed the checks is over its device's rate limit"},
        503: {"description": "The broker did not acknowledge; nothing was accepted, retry after Retry-After"},
    },
)
async def submit_readings(request: Request) -> dict[str, Any]:
    settings: IngestSettings = request.app.state.settings
    pipeline: ReadingPipeline = request.app.state.pipeline
    body = await read_json_body(request, settings.max_body_bytes)
    if not isinstance(body, dict) or not isinstance(body.get("readings"), list):
        raise Problem(422, "invalid-request", 'The body must be an object {"readings": [reading, ...]}.')
    batch = body["readings"]
    if len(batch) > settings.max_batch_size:
        raise Problem(
            413, "batch-too-large", f"{len(batch)} readings; a batch holds at most {settings.max_batch_size}."
        )
    try:
        async with _dependencies_answer(request):
            verdicts = await pipeline.ingest(batch)
    except RateLimitedError as exc:
        raise Problem(
            429,
            "rate-limited",
            "Every reading that passed the checks is over its device's rate limit; none was accepted.",
            headers={"Retry-After": str(exc.retry_after_s)},
            results=results(exc.verdicts),
        ) from exc
    accepted = sum(verdict is None for verdict in verdicts)
    return {"accepted": accepted, "rejected": len(verdicts) - accepted, "results": results(verdicts)}


def results(verdicts: list[Rejection | None]) -> list[dict[str, Any]]:
    """The per-reading results of a batch, in order."""
    return [
        {
            "index": index,
            "status": "accepted" if verdict is None else "rejected",
            "reason": None if verdict is None else str(verdict),
        }
        for index, verdict in enumerate(verdicts)
    ]
