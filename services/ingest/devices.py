"""Device registrations (pure): a device's did:key bound to its owner's wallet, kind and zone, signed by
the owner. The signed object is kept as it was received: it travels with every reading of the device, so
anyone downstream can re-verify who bound the device to the wallet that gets its rewards."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.common import didkey, schemas, signing
from services.common.events import rfc3339

REGISTRATION_DEFINITION = "device_registration"
SIGNER_FIELD = "owner"
# A registration is stored and copied into every envelope of its device's readings, so it may carry
# nothing but these (the shared definition itself leaves room for more).
FIELDS = frozenset({"device_id", "owner", "kind", "zone", signing.SIG_FIELD})


class RegistrationError(ValueError):
    """A device registration that cannot be accepted."""


class InvalidRegistrationError(RegistrationError):
    """The registration does not have the shape of a registration (the message names the field)."""


class RegistrationSignatureError(RegistrationError):
    """The registration is not signed by its owner's key."""


@dataclass(frozen=True)
class Device:
    """A registered device: the fields readings are checked against, and the signed registration."""

    device_id: str
    owner: str
    kind: str
    zone: str
    registration: dict[str, Any]
    registered_at: datetime

    def as_json(self) -> dict[str, Any]:
        """The device as the API answers it."""
        return {
            "device_id": self.device_id,
            "owner": self.owner,
            "kind": self.kind,
            "zone": self.zone,
            "registration": self.registration,
            "registered_at": rfc3339(self.registered_at),
        }


def check_registration(body: Any) -> None:
    """Raise `InvalidRegistrationError` or `RegistrationSignatureError` unless `body` is a registration
    (per ``defs.v1.json#/$defs/device_registration``, no other fields, decodable did:keys) signed by its
    owner."""
    try:
        schemas.validate_definition(REGISTRATION_DEFINITION, body)
    except schemas.SchemaError as exc:
        raise InvalidRegistrationError(str(exc)) from exc
    if unknown := sorted(set(body) - FIELDS):
        raise InvalidRegistrationError(f"unexpected field(s): {', '.join(unknown)}")
    for field in ("device_id", SIGNER_FIELD):
        try:
            didkey.decode(body[field])
        except didkey.DidKeyError as exc:
            raise InvalidRegistrationError(f"{field}: {exc}") from exc
    try:
        signing.verify(body, SIGNER_FIELD)
    except signing.SignatureError as exc:
        raise RegistrationSignatureError(f"the registration is not signed by its owner: {exc}") from exc


def same_registration(stored: Mapping[str, Any], submitted: Mapping[str, Any]) -> bool:
    """True if `submitted` says the same as `stored` (the signature aside), i.e. it is a harmless repeat."""
    return signing.unsigned(stored) == signing.unsigned(submitted)
