"""Acceptance of ``city.readings.v1`` records (pure): what makes a reading worth rewarding.

A record is accepted when it is attested by a key holding the ingest-attestor role (`services.common.
attestation`: ingest's word that the reading passed its registration, consent and sequence checks), it is a
JSON envelope that fits its schema, its ``reading_id`` is the one the schema defines, and the registration it
carries is for the reading's device and the envelope's owner. Anything else raises `InvalidReading` with a
stable reason code (the metrics label) and a detail for the DLQ record.

The device's and the owner's own signatures are not checked again here: ingest checked them, and its
attestation covers the very bytes that carry them. They travel on, inside each reward, to the chain, where an
auditor can check them (``smartcity verify --replay --deep``). Checking them here would cost an Ed25519
verification a reading, the worker's largest cost, to learn nothing an attested record does not already say.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.common import attestation, events, schemas
from services.common.ids import reading_id
from services.common.topics import READINGS

UNTRUSTED_ATTESTOR = "untrusted-attestor"
MALFORMED_JSON = "malformed-json"
SCHEMA = "schema"
READING_ID = "reading-id"
DEVICE_MISMATCH = "device-mismatch"
OWNER_MISMATCH = "owner-mismatch"
IMPOSSIBLE_DATE = "impossible-date"


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
    attestation: Mapping[str, Any]
    """Ingest's attestation of the envelope: it travels with each reward, so the ledger can check it."""
    person: str | None = None
    """The person the owner wallet was bound to when ingest accepted the reading (``city.bindings.v1``), as
    ingest attests it; None: the wallet was not bound."""
    envelope: bytes = b""
    """The envelope's bytes as ingest attested them: each reward's private disclosure carries them to the
    ledger, which checks ingest's attestation on them as they are (`services.common.evidence`)."""

    @property
    def ts(self) -> str:
        """When the device took the reading (RFC 3339, as signed)."""
        return self.reading["ts"]


ParsedRecord = list[tuple[bytes, AcceptedReading | InvalidReading]]
"""A readings record's readings (one, or a batch record's lines), each with its bytes: accepted, or why not."""


def parse(raw: bytes | None, header: str | bytes | None, attestors: Collection[str]) -> AcceptedReading:
    """`parse_record` of a record that must carry one reading: the reading, or raises `InvalidReading`."""
    parsed = parse_record(raw, header, attestors)
    if len(parsed) != 1:
        raise InvalidReading(MALFORMED_JSON, f"a record of {len(parsed)} readings where one was expected")
    [(_, reading)] = parsed
    if isinstance(reading, InvalidReading):
        raise reading
    return reading


def parse_record(raw: bytes | None, header: str | bytes | None, attestors: Collection[str]) -> ParsedRecord:
    """Each reading of a readings record (one, or a batch record's lines), with its bytes: accepted, or the
    `InvalidReading` saying why not. A record whose attestation fails, or whose signer does not hold the
    ingest-attestor role, is one `InvalidReading` for the whole value."""
    value = raw or b""
    try:
        lines = attestation.verify_record(header, READINGS.name, value)
    except attestation.AttestationError as exc:
        return [(value, InvalidReading(exc.code, exc.detail))]
    signer = lines[0][1]["signer"]
    if signer not in attestors:
        return [
            (value, InvalidReading(UNTRUSTED_ATTESTOR, f"{signer} does not hold the ingest-attestor role"))
        ]
    parsed: ParsedRecord = []
    for line, attested_by in lines:
        try:
            parsed.append((line, accept(events.decode_json(line), attested_by, line)))
        except InvalidReading as exc:
            parsed.append((line, exc))
        except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            parsed.append((line, InvalidReading(MALFORMED_JSON, str(exc))))
    return parsed


def parse_all(
    records: Iterable[tuple[bytes | None, str | bytes | None]], attestors: Collection[str]
) -> list[ParsedRecord]:
    """`parse_record` of each (raw value, attestation header), in order.

    CPU-bound and free of I/O: the worker runs it in other processes.
    """
    return [parse_record(raw, header, attestors) for raw, header in records]


def accept(envelope: Any, attested_by: Mapping[str, Any], raw: bytes | None = None) -> AcceptedReading:
    """Accept a decoded readings envelope whose attestation verified (of its bytes `raw`; by default its JCS
    bytes, as ingest writes it), or raise `InvalidReading` naming the first problem."""
    try:
        schemas.validate(READINGS, envelope)
    except schemas.SchemaError as exc:
        raise InvalidReading(SCHEMA, str(exc)) from exc
    reading, registration = envelope["reading"], envelope["registration"]
    expected_id = reading_id(reading["device_id"], reading["seq"])
    if envelope["reading_id"] != expected_id:
        raise InvalidReading(READING_ID, f"reading_id is not sha256('<device_id>/<seq>') = {expected_id}")
    if registration["device_id"] != reading["device_id"]:
        raise InvalidReading(DEVICE_MISMATCH, "the registration is for another device than the reading's")
    if registration["owner"] != envelope["owner"]:
        raise InvalidReading(OWNER_MISMATCH, "the envelope's owner is not the registration's owner")
    for field, text in (("ts", reading["ts"]), ("received_at", envelope["received_at"])):
        try:  # the schema's pattern lets through days that do not exist ("2026-99-99T99:99:99Z")
            datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidReading(IMPOSSIBLE_DATE, f"{field} {text!r}: {exc}") from exc
    return AcceptedReading(
        reading_id=envelope["reading_id"],
        owner=envelope["owner"],
        received_at=envelope["received_at"],
        reading=reading,
        registration=registration,
        attestation=attested_by,
        person=envelope.get("person"),
        envelope=raw if raw is not None else attestation.encode(envelope),
    )


def record_key(
    key: bytes | None, lines: ParsedRecord, reading: AcceptedReading | InvalidReading
) -> bytes | None:
    """The key a reading's decision (or DLQ record) is keyed by: its record's key, or in a batch record (whose
    key is its first reading's) the accepted reading's own: the person its owner is bound to, else the owner."""
    if len(lines) == 1 or isinstance(reading, InvalidReading):
        return key
    return (reading.person or reading.owner).encode()
