"""Receipts: a city device's signed word that a citizen's reading happened as it says (pure).

Behaviour (a recycling drop-off, a transit check-in, energy saved...) is paid only when a city device of the
right class attests it: a recycling station, a transit gate, a smart meter, registered at ingest by a city
operator (``services/ingest/devices.py``). The device co-signs the citizen's reading by issuing a receipt,
which the reading carries in its ``receipt`` field (``defs.v1.json#/$defs/receipt``)::

    {"city_device": "<did:key of the city device>", "class": "recycling_station",
     "reading": "<sha256 hex of the JCS bytes of the reading without sig and receipt>", "sig": "..."}

1. the citizen's device builds its reading (device_id, seq, ts, kind, zone, values) and hands it to the
   city device (NFC, QR code, the gate's own reader...);
2. the city device signs a receipt over the hash of that body (`sign_receipt`): the receipt binds the very
   reading, its device, sequence number, time, kind, zone and values, so it cannot be moved to another
   reading, nor the values changed after the city device saw them;
3. the citizen's device puts the receipt into the reading and signs the whole (`attach`): its ``sig``
   covers the receipt too.

Ingest checks the receipt (`check`, then the city device's registration: registered by an operator, not
revoked, of the class the receipt names and for the reading's kind) and refuses a reading whose receipt
fails; what it publishes is attested by its key, receipt included. Downstream, the policy says which
classes attest each kind (``attested_by``): rewards decides a reading of such a kind without a receipt of one
of them ``unattested``, and the ledger and the verifier refuse a reward for one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.common import schemas, signing
from services.common.signing import Keypair

RECEIPT_FIELD = "receipt"
SIGNER_FIELD = "city_device"
RECEIPT_DEFINITION = "receipt"


class ReceiptError(ValueError):
    """A receipt that does not hold; `code` says which check failed (``invalid``, ``signature``,
    ``mismatch``, ``self-attested``)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def reading_digest(reading: Mapping[str, Any]) -> str:
    """What a receipt binds: sha256 hex of the JCS bytes of `reading` without ``sig`` and ``receipt``.

    Raises `signing.SignatureError` if the reading has no canonical bytes."""
    body = {k: v for k, v in reading.items() if k not in (signing.SIG_FIELD, RECEIPT_FIELD)}
    return signing.sha256_hex(signing.canonical_bytes(body))


def sign_receipt(city_device: Keypair, device_class: str, reading: Mapping[str, Any]) -> dict[str, Any]:
    """The receipt `city_device` (of `device_class`) issues for the citizen's `reading` (signed or not: its
    ``sig`` and any ``receipt`` are left out of what is bound)."""
    return city_device.sign(
        {SIGNER_FIELD: city_device.did, "class": device_class, "reading": reading_digest(reading)}
    )


def attach(device: Keypair, reading: Mapping[str, Any], receipt: Mapping[str, Any]) -> dict[str, Any]:
    """The citizen's `reading` with `receipt`, signed by its `device` (the signature covers the receipt)."""
    return device.sign({**signing.unsigned(reading), RECEIPT_FIELD: dict(receipt)})


def attested_reading(
    device: Keypair, city_device: Keypair, device_class: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """`body` receipted by `city_device` and signed by `device`: both steps at once."""
    return attach(device, body, sign_receipt(city_device, device_class, body))


def check(reading: Mapping[str, Any]) -> None:
    """Raise `ReceiptError` unless the receipt of `reading` (which has one) is well formed, signed by its city
    device (canonical signature text) and binds this very reading; its registration is checked apart.

    A city device's receipt for its own reading attests nothing: it is refused (``self-attested``)."""
    receipt = reading[RECEIPT_FIELD]
    try:
        schemas.validate_definition(RECEIPT_DEFINITION, receipt)
    except schemas.SchemaError as exc:
        raise ReceiptError("invalid", f"receipt/{exc}") from exc
    if receipt[SIGNER_FIELD] == reading.get("device_id"):
        raise ReceiptError("self-attested", "a device cannot attest its own reading")
    try:
        signing.verify(receipt, SIGNER_FIELD)
    except signing.SignatureError as exc:
        raise ReceiptError("signature", f"the receipt is not signed by its city_device: {exc}") from exc
    try:
        digest = reading_digest(reading)
    except signing.SignatureError as exc:
        raise ReceiptError("invalid", str(exc)) from exc
    if receipt["reading"] != digest:
        raise ReceiptError("mismatch", "the receipt is for another reading (or other values)")


def attester_class(reading: Mapping[str, Any]) -> str | None:
    """The class of the city device whose receipt `reading` carries, or None without one. Trust it only on a
    reading ingest attested (ingest checked the receipt and the city device's registration)."""
    receipt = reading.get(RECEIPT_FIELD)
    if not isinstance(receipt, Mapping):
        return None
    device_class = receipt.get("class")
    return device_class if isinstance(device_class, str) else None
