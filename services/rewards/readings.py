"""Acceptance of ``city.readings.v1`` records (pure): what makes a reading worth rewarding.

A record is accepted when it is a JSON envelope that fits its schema, its ``reading_id`` is the one the
schema defines, the reading is signed by its device, and the registration binding that device to the
envelope's owner is signed by that owner. Anything else raises `InvalidReading` with a stable reason code
(the metrics label) and a detail for the DLQ record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from services.common import events, schemas, signing
from services.common.ids import reading_id
from services.common.topics import READINGS

MALFORMED_JSON = "malformed-json"
SCHEMA = "schema"
READING_ID = "reading-id"
READING_SIGNATURE = "reading-signature"
REGISTRATION_SIGNATURE = "registration-signature"
DEVICE_MISMATCH = "device-mismatch"
OWNER_MISMATCH = "owner-mismatch"


class InvalidReading(ValueError):
    """A readings record that cannot earn a reward; `reason` is a stable code, the message says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[InvalidReading], tuple[str, str]]:
        # Pickled by its own arguments: it comes back from the worker processes that check signatures.
        return type(self), (self.reason, self.detail)


@dataclass(frozen=True)
class AcceptedReading:
    """A verified readings envelope; `reading` and `registration` are the signed objects as received."""

    reading_id: str
    owner: str
    received_at: str
    reading: Mapping[str, Any]
    registration: Mapping[str, Any]

    @property
    def ts(self) -> str:
        """When the device took the reading (RFC 3339, as signed)."""
        return self.reading["ts"]


def parse(raw: bytes | None) -> AcceptedReading:
    """Decode and accept the raw value of a readings record; raises `InvalidReading`."""
    try:
        envelope = events.decode_json(raw)
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidReading(MALFORMED_JSON, str(exc)) from exc
    return accept(envelope)


def parse_all(raws: Iterable[bytes | None]) -> list[AcceptedReading | InvalidReading]:
    """`parse` of each raw value, in order, with the `InvalidReading` in place of a value that fails.

    CPU-bound (an Ed25519 check per reading) and free of I/O: the worker runs it in other processes.
    """
    parsed: list[AcceptedReading | InvalidReading] = []
    for raw in raws:
        try:
            parsed.append(parse(raw))
        except InvalidReading as exc:
            parsed.append(exc)
    return parsed


def accept(envelope: Any) -> AcceptedReading:
    """Accept a decoded readings envelope, or raise `InvalidReading` naming the first problem."""
    try:
        schemas.validate(READINGS, envelope)
    except schemas.SchemaError as exc:
        raise InvalidReading(SCHEMA, str(exc)) from exc
    reading, registration = envelope["reading"], envelope["registration"]
    expected_id = reading_id(reading["device_id"], reading["seq"])
    if envelope["reading_id"] != expected_id:
        raise InvalidReading(READING_ID, f"reading_id is not sha256('<device_id>/<seq>') = {expected_id}")
    try:
        signing.verify(reading, "device_id")
    except signing.SignatureError as exc:
        raise InvalidReading(READING_SIGNATURE, f"the reading is not signed by its device: {exc}") from exc
    try:
        # A device's registration comes with every one of its readings: verified once, then recognised.
        signing.verify(registration, "owner", remember=True)
    except signing.SignatureError as exc:
        raise InvalidReading(
            REGISTRATION_SIGNATURE, f"the registration is not signed by its owner: {exc}"
        ) from exc
    if registration["device_id"] != reading["device_id"]:
        raise InvalidReading(DEVICE_MISMATCH, "the registration is for another device than the reading's")
    if registration["owner"] != envelope["owner"]:
        raise InvalidReading(OWNER_MISMATCH, "the envelope's owner is not the registration's owner")
    return AcceptedReading(
        reading_id=envelope["reading_id"],
        owner=envelope["owner"],
        received_at=envelope["received_at"],
        reading=reading,
        registration=registration,
    )
