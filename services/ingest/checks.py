"""The checks a reading must pass before it is accepted (pure, no I/O).

Two kinds, so that the costly, CPU-bound part runs off the event loop while the device registrations are
looked up:

- `check_reading`: what a reading can be judged on alone, its shape (``defs.v1.json#/$defs/reading``) and its
  signature by its own device key;
- `check_device`: what needs the device's registration: that the device is registered and the reading's
  kind and zone are the registered ones. Per-device sequence/replay checks and rate limits belong here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from services.common import didkey, schemas, signing
from services.ingest.devices import Device

READING_DEFINITION = "reading"
SIGNER_FIELD = "device_id"


class Reason(StrEnum):
    """Why a reading was rejected (a small fixed set: it labels a metric)."""

    INVALID_READING = "invalid_reading"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_DEVICE = "unknown_device"
    KIND_MISMATCH = "kind_mismatch"


@dataclass(frozen=True)
class Rejection:
    """A rejected reading: the reason, and for a malformed reading which field is wrong and how."""

    reason: Reason
    detail: str | None = None

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else str(self.reason)


def check_shape(reading: Any) -> Rejection | None:
    """A rejection naming the first offending field, or None if `reading` has the shape of a reading."""
    try:
        schemas.validate_definition(READING_DEFINITION, reading)
    except schemas.SchemaError as exc:
        return Rejection(Reason.INVALID_READING, str(exc))
    if not isinstance(reading["seq"], int):
        # JSON Schema counts 1.0 as an integer and JCS signs it as 1, but the reading id would differ
        # ('<device>/1.0'): a replay of a signed reading must never get a new id.
        return Rejection(Reason.INVALID_READING, "seq: must be written as an integer")
    return None


def check_signature(reading: Mapping[str, Any]) -> Rejection | None:
    """None if a well-shaped reading is signed by the key of its ``device_id``."""
    try:
        signing.verify(reading, SIGNER_FIELD)
    except signing.SignatureError:
        return Rejection(Reason.BAD_SIGNATURE)
    return None


def check_reading(reading: Any) -> Rejection | None:
    """The checks a reading passes or fails on its own: shape, then signature."""
    return check_shape(reading) or check_signature(reading)


def check_readings(readings: Sequence[Any]) -> list[Rejection | None]:
    """`check_reading` over a batch (CPU-bound: schema validation and Ed25519 verification)."""
    return [check_reading(reading) for reading in readings]


def check_device(reading: Mapping[str, Any], device: Device | None) -> Rejection | None:
    """The checks of a reading that passed `check_reading` against its device's registration (None if
    the device is not registered)."""
    if device is None:
        return Rejection(Reason.UNKNOWN_DEVICE)
    if reading["kind"] != device.kind or reading["zone"] != device.zone:
        return Rejection(Reason.KIND_MISMATCH)
    return None


def claimed_device_ids(readings: Iterable[Any]) -> set[str]:
    """The well-formed device ids a batch claims, before any other check: what to look up in the registry."""
    claimed = {reading.get("device_id") for reading in readings if isinstance(reading, dict)}
    return {device_id for device_id in claimed if didkey.is_did_key(device_id)}
