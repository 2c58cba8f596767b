"""The checks a reading must pass before it is accepted (pure, no I/O).

In three stages, so that the costly, CPU-bound part runs off the event loop while the device registrations
are looked up, and the part that needs the database's word runs under the batch's row locks:

- `check_reading`: what a reading can be judged on alone: its shape (``defs.v1.json#/$defs/reading``), its
  size, its timestamp against the clock, its values against its kind's schema, its signature by its
  own device key, and the receipt it may carry (signed by its city device, binding this very reading:
  `services.common.receipts`);
- `check_device`: what needs the device's registration: that the device is registered and the reading's
  kind and zone are the registered ones; `check_attester`: that a receipt's city device is registered as
  one (by an operator), not revoked, of the class the receipt names and for the reading's kind; then
  `check_consent`: that the device's owner granted the city the consent category of the reading's kind, in
  the consent in force at the reading's own time;
- `check_sequences`: what needs the device's current state, read under lock: not revoked, and a sequence
  number above every one published before (a replay or a retried duplicate is refused).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from services.common import didkey, kinds, receipts, schemas, signing
from services.ingest.devices import Device

READING_DEFINITION = "reading"
SIGNER_FIELD = "device_id"


class Reason(StrEnum):
    """Why a reading was rejected (a small fixed set: it labels a metric)."""

    INVALID_READING = "invalid_reading"
    TOO_LARGE = "too_large"
    CLOCK_SKEW = "clock_skew"
    UNKNOWN_KIND = "unknown_kind"
    INVALID_VALUES = "invalid_values"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_DEVICE = "unknown_device"
    REVOKED_DEVICE = "revoked_device"
    KIND_MISMATCH = "kind_mismatch"
    ZONE_MISMATCH = "zone_mismatch"
    NO_CONSENT = "no_consent"
    RATE_LIMITED = "rate_limited"
    DUPLICATE = "duplicate"
    # The reading's receipt (services/common/receipts.py): a forged or misplaced one is refused, never taken
    # for an attestation nor silently dropped.
    BAD_RECEIPT_SIGNATURE = "bad_receipt_signature"
    RECEIPT_MISMATCH = "receipt_mismatch"
    SELF_ATTESTED = "self_attested"
    UNKNOWN_ATTESTER = "unknown_attester"
    NOT_CITY_DEVICE = "not_city_device"
    REVOKED_ATTESTER = "revoked_attester"
    ATTESTER_MISMATCH = "attester_mismatch"


@dataclass(frozen=True)
class Rejection:
    """A rejected reading: the reason, and for a malformed reading which field is wrong and how."""

    reason: Reason
    detail: str | None = None

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else str(self.reason)


@dataclass(frozen=True)
class Limits:
    """What a reading may weigh and how far its timestamp may be from the receiving clock."""

    max_reading_bytes: int = 4096
    max_ahead_s: float = 300.0
    max_age_s: float = 86_400.0


def check_shape(reading: Any) -> Rejection | None:
    """A rejection naming the first offending field, or None if `reading` has the shape of a reading."""
    try:
        schemas.validate_definition(READING_DEFINITION, reading)
    except schemas.SchemaError as exc:
        # `seq` written as 1.0 is refused there too: the reading id ('<device>/1.0') would differ.
        return Rejection(Reason.INVALID_READING, str(exc))
    return None


def check_time(ts: str, now: float, limits: Limits) -> Rejection | None:
    """None if the timestamp is a real date no further ahead of `now` (epoch seconds) than the limits."""
    try:
        # The pattern fixed the form; seconds are precision enough against a window of minutes.
        moment = datetime.fromisoformat(ts[:19]).replace(tzinfo=UTC).timestamp()
    except ValueError as exc:
        return Rejection(Reason.INVALID_READING, f"ts: {exc}")
    if moment > now + limits.max_ahead_s:
        return Rejection(Reason.CLOCK_SKEW, f"ts is more than {limits.max_ahead_s:g}s ahead of the clock")
    if moment < now - limits.max_age_s:
        return Rejection(Reason.CLOCK_SKEW, f"ts is more than {limits.max_age_s:g}s old")
    return None


def check_values(kind: str, values: Any) -> Rejection | None:
    """None if `values` fit the schema of `kind` in the registry."""
    try:
        kinds.validate_values(kind, values)
    except kinds.UnknownKindError:
        return Rejection(Reason.UNKNOWN_KIND, f"kind: {kind!r} is not in the registry")
    except schemas.SchemaError as exc:
        return Rejection(Reason.INVALID_VALUES, str(exc))
    return None


def check_signature(reading: Mapping[str, Any], signed_bytes: bytes) -> Rejection | None:
    """None if `signed_bytes` (the JCS bytes of the reading without ``sig``) are signed by its device."""
    try:
        signature = signing.signature_bytes(reading[signing.SIG_FIELD])
        signing.verify_bytes(reading[SIGNER_FIELD], signed_bytes, signature)
    except (ValueError, signing.SignatureError):
        return Rejection(Reason.BAD_SIGNATURE)
    return None


_RECEIPT_REASONS = {
    "invalid": Reason.INVALID_READING,
    "signature": Reason.BAD_RECEIPT_SIGNATURE,
    "mismatch": Reason.RECEIPT_MISMATCH,
    "self-attested": Reason.SELF_ATTESTED,
}


def check_receipt(reading: Mapping[str, Any]) -> Rejection | None:
    """None if `reading` carries no receipt, or one signed by its city device (canonical text) that binds
    this very reading; the city device's registration is `check_attester`'s."""
    if receipts.RECEIPT_FIELD not in reading:
        return None
    try:
        receipts.check(reading)
    except receipts.ReceiptError as exc:
        return Rejection(_RECEIPT_REASONS.get(exc.code, Reason.INVALID_READING), exc.detail)
    return None


def check_reading(reading: Any, now: float, limits: Limits) -> Rejection | None:
    """The checks a reading passes or fails on its own, cheapest first: shape, size, time, values, the
    signature, and its receipt's last."""
    if rejection := check_shape(reading):
        return rejection
    try:
        signed_bytes = signing.canonical_bytes(signing.unsigned(reading))
    except signing.SignatureError as exc:  # e.g. an integer beyond what JCS can write exactly
        return Rejection(Reason.INVALID_READING, str(exc))
    size = len(signed_bytes) + len(reading[signing.SIG_FIELD])
    if size > limits.max_reading_bytes:
        return Rejection(Reason.TOO_LARGE, f"{size} bytes; a reading may have {limits.max_reading_bytes}")
    return (
        check_time(reading["ts"], now, limits)
        or check_values(reading["kind"], reading["values"])
        or check_signature(reading, signed_bytes)
        or check_receipt(reading)
    )


def check_readings(readings: Sequence[Any], now: float, limits: Limits) -> list[Rejection | None]:
    """`check_reading` over a batch (CPU-bound: JCS and Ed25519 verification)."""
    return [check_reading(reading, now, limits) for reading in readings]


def check_device(reading: Mapping[str, Any], device: Device | None) -> Rejection | None:
    """The checks of a reading that passed `check_reading` against its device's registration (None if
    the device is not registered)."""
    if device is None:
        return Rejection(Reason.UNKNOWN_DEVICE)
    if reading["kind"] != device.kind:
        return Rejection(Reason.KIND_MISMATCH, f"the device is registered for {device.kind!r}")
    if reading["zone"] != device.zone:
        return Rejection(Reason.ZONE_MISMATCH, f"the device is registered in {device.zone!r}")
    return None


def check_consent(
    reading: Mapping[str, Any], device: Device, allows_at: Callable[[str, str, datetime], bool]
) -> Rejection | None:
    """None if the device's owner granted the city the consent category of the reading's kind in a consent in
    force at the reading's own time, as `allows_at(subject, category, ts)` (the consent view) says; call it on
    a reading that passed the checks above (its ts is a real time)."""
    category = kinds.category(reading["kind"])
    if not allows_at(device.owner, category, datetime.fromisoformat(reading["ts"].replace("Z", "+00:00"))):
        return Rejection(
            Reason.NO_CONSENT, f"the owner had not granted the city {category!r} data at the reading's time"
        )
    return None


def check_attester(reading: Mapping[str, Any], devices: Mapping[str, Device]) -> Rejection | None:
    """None if `reading` (which passed the checks above) carries no receipt, or one whose city device is
    among the registered `devices` as a city device (registered by an operator with a class), not revoked,
    of the class the receipt names and registered for the reading's kind.

    A revocation reaches this check through the registry's cache: at once on the instance that took it, on
    the others within ``INGEST_DEVICE_CACHE_TTL_S``."""
    receipt = reading.get(receipts.RECEIPT_FIELD)
    if receipt is None:
        return None
    city_device = devices.get(receipt[receipts.SIGNER_FIELD])
    if city_device is None:
        return Rejection(Reason.UNKNOWN_ATTESTER, "the receipt's city_device is not registered")
    if city_device.device_class is None:
        return Rejection(Reason.NOT_CITY_DEVICE, "the receipt's signer is not a city device")
    if not city_device.active:
        return Rejection(Reason.REVOKED_ATTESTER, "the receipt's city device is revoked")
    if receipt["class"] != city_device.device_class:
        return Rejection(
            Reason.ATTESTER_MISMATCH, f"the city device is registered as a {city_device.device_class!r}"
        )
    if reading["kind"] != city_device.kind:
        return Rejection(
            Reason.ATTESTER_MISMATCH, f"the city device attests {city_device.kind!r} readings, not these"
        )
    return None


@dataclass(frozen=True)
class DeviceState:
    """A device's state as the database holds it under the batch's lock."""

    last_seq: int
    revoked: bool


def check_sequences(
    candidates: Iterable[tuple[int, Mapping[str, Any]]], states: Mapping[str, DeviceState]
) -> tuple[dict[int, Rejection], dict[str, int]]:
    """Judge `(index, reading)` pairs, in batch order, against their devices' `states`: rejections by
    index, and per device the highest sequence number accepted (what to store once published).

    A reading must carry a sequence number above the device's last published one and above every
    earlier one accepted from the same batch: a replay, a retried duplicate and a reading out of order
    are all refused (as duplicates: the device has published at or past that number already).
    """
    rejections: dict[int, Rejection] = {}
    highest: dict[str, int] = {}
    for index, reading in candidates:
        device_id, seq = reading["device_id"], reading["seq"]
        state = states.get(device_id)
        if state is None:  # no sequence row: registrations are never deleted, so refuse rather than guess
            rejections[index] = Rejection(Reason.UNKNOWN_DEVICE)
        elif state.revoked:
            rejections[index] = Rejection(Reason.REVOKED_DEVICE)
        else:
            floor = highest.get(device_id, state.last_seq)
            if seq <= floor:
                rejections[index] = Rejection(Reason.DUPLICATE, f"seq {seq} <= {floor}, already published")
            else:
                highest[device_id] = seq
    return rejections, highest


def claimed_device_ids(readings: Iterable[Any]) -> set[str]:
    """The well-formed device ids a batch claims, before any other check: what to look up in the registry
    (its readings' devices, and the city devices of their receipts)."""
    claimed: set[str] = set()
    for reading in readings:
        if isinstance(reading, dict):
            receipt = reading.get(receipts.RECEIPT_FIELD)
            signer = receipt.get(receipts.SIGNER_FIELD) if isinstance(receipt, dict) else None
            claimed.update(d for d in (reading.get("device_id"), signer) if isinstance(d, str))
    return {device_id for device_id in claimed if didkey.is_did_key(device_id)}
