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
from services.common.openapi import answers, problems, raw_body, signed_by
from services.common.signed_reads import may_read, signed_reader
from services.ingest import devices
from services.ingest.api import models
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

UNAVAILABLE = (
    503,
    "The database or the broker did not answer, or the consent or binding view has not caught up: nothing was "
    "done, retry after Retry-After",
)
INVALID_DID = (400, "Not an Ed25519 did:key (invalid-did)")


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
    response_model=models.Device,
    responses={
        **answers(models.Device, description="The same registration was stored before"),
        **problems(
            (
                400,
                "Malformed JSON, or not proven by the device or not signed by the owner (invalid-signature)",
            ),
            (403, "A city device (`class`) whose owner is not a city operator (operator-required)"),
            (409, "Registered differently, or `replaces` is not an active device of the owner"),
            UNAVAILABLE,
        ),
    },
    openapi_extra=raw_body(
        "defs.v1.device_registration",
        models.REGISTRATION,
        signers=[
            signed_by("device_id", signature="device_sig", excludes=["sig"]),
            signed_by("owner"),
        ],
        description="With `replaces`, a key rotation; with `class`, a city device, whose owner must be a city "
        "operator (INGEST_OPERATORS).",
    ),
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
    response_model=models.Device,
    responses=problems(
        INVALID_DID, (404, "No such device, or not the reader's (the same answer)"), UNAVAILABLE
    ),
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
    response_model=models.Devices,
    responses=problems(
        INVALID_DID, (403, "Another owner's devices, and the reader is not a city operator"), UNAVAILABLE
    ),
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
    response_model=models.Devices,
    responses=problems(
        INVALID_DID, (404, "No such device, or not the reader's (the same answer)"), UNAVAILABLE
    ),
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
    response_model=models.Device,
    responses=problems(
        INVALID_DID,
        (
            403,
            "The signer is neither the owner nor a city operator, or the signature does not verify "
            "(revocation-refused)",
        ),
        (404, "No such device"),
        UNAVAILABLE,
    ),
    openapi_extra=raw_body(models.Revocation, models.REVOCATION, signers=[signed_by("revoked_by")]),
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


@router.get(
    "/kinds",
    tags=["readings"],
    summary="The reading kinds: units and consent category of each",
    response_model=models.Kinds,
)
async def list_kinds() -> dict[str, Any]:
    return {"kinds": [kind.as_json() for kind in kinds.registry().values()]}


@router.post(
    "/readings",
    status_code=202,
    tags=["readings"],
    summary="Submit a batch of signed readings; each is accepted or rejected on its own",
    response_model=models.ReadingsAnswer,
    responses=problems(
        (
            429,
            "Every reading that passed the checks is over its device's rate limit (rate-limited, with the "
            "results): none was accepted",
        ),
        UNAVAILABLE,
    ),
    openapi_extra=raw_body(
        models.ReadingsBatch,
        {"readings": [models.READING]},
        signers=[signed_by("device_id", at="readings[]")],
        description="A batch too large (more readings than INGEST_MAX_BATCH_SIZE, batch-too-large) is a 413.",
    ),
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
