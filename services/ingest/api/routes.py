"""Ingest HTTP routes: device registrations and batches of signed readings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import SQLAlchemyError

from services.common.didkey import DidKeyError, decode
from services.common.http import Problem, read_json_body
from services.common.kafka import BrokerUnavailableError
from services.ingest import devices
from services.ingest.metrics import DEVICE_REGISTRATIONS
from services.ingest.pipeline import ReadingPipeline
from services.ingest.settings import IngestSettings
from services.ingest.store import DeviceStore

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1")

_SIGNED = {"type": "object", "required": ["sig"], "additionalProperties": True}
REGISTRATION_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                **_SIGNED,
                "description": "A device registration signed by its owner (defs.v1.json#/$defs/device_registration).",
                "required": ["device_id", "owner", "kind", "zone", "sig"],
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
    summary="Register a device to its owner's wallet (signed by the owner); repeating it is harmless",
    openapi_extra={"requestBody": REGISTRATION_BODY},
    responses={
        200: {"description": "The same registration was stored before"},
        409: {"description": "The device is registered differently (another owner, kind or zone)"},
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
    async with _dependencies_answer(request):
        device, created = await store.register(body)
    if not created and not devices.same_registration(device.registration, body):
        DEVICE_REGISTRATIONS.labels("conflict").inc()
        other_owner = device.owner != body["owner"]
        raise Problem(
            409,
            "device-conflict",
            "The device is registered to another owner."
            if other_owner
            else "The device is registered with another kind or zone; registrations cannot be changed.",
        )
    DEVICE_REGISTRATIONS.labels("created" if created else "repeated").inc()
    response.status_code = 201 if created else 200
    return device.as_json()


@router.get(
    "/devices/{device_id}", tags=["devices"], summary="A registered device and its signed registration"
)
async def get_device(device_id: str, request: Request) -> dict[str, Any]:
    try:
        decode(device_id)
    except DidKeyError as exc:
        raise Problem(400, "invalid-did", f"{device_id!r} is not an Ed25519 did:key: {exc}") from exc
    store: DeviceStore = request.app.state.devices
    async with _dependencies_answer(request):
        device = await store.get(device_id)
    if device is None:
        raise Problem(404, "not-found", f"No device {device_id} is registered.")
    return device.as_json()


@router.post(
    "/readings",
    status_code=202,
    tags=["readings"],
    summary="Submit a batch of signed readings; each is accepted or rejected on its own",
    openapi_extra={"requestBody": READINGS_BODY},
    responses={
        413: {"description": "The body or the batch is too large"},
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
    async with _dependencies_answer(request):
        verdicts = await pipeline.ingest(batch)
    results = [
        {
            "index": index,
            "status": "accepted" if verdict is None else "rejected",
            "reason": None if verdict is None else str(verdict),
        }
        for index, verdict in enumerate(verdicts)
    ]
    accepted = sum(verdict is None for verdict in verdicts)
    return {"accepted": accepted, "rejected": len(verdicts) - accepted, "results": results}
