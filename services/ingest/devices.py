"""Device registrations and revocations (pure).

A registration binds a device's did:key to its owner's wallet, kind, zone and optional location. Two keys
sign it in turn, so nobody can bind a key they do not hold, nor to a wallet that is not theirs:

1. the device signs the object without ``sig`` and ``device_sig``, into ``device_sig`` (proof of possession);
2. the owner signs the whole object, ``device_sig`` included, into ``sig`` (the standard signed object).

A device's app signs so with the SDK's `sign_registration` (`smartcity_sdk.ingest`), which this module names too.

The signed object is kept as it was received: it travels with every reading of the device, so anyone
downstream re-verifies the owner's ``sig`` as for any signed object, and can re-check the device's proof.

A registration may carry ``replaces``: the owner's device whose key it rotates. The old device is then
retired (revoked, with ``replaced_by``) and the two stay linked, so the device's history is kept.

A revocation ``{"device_id", "revoked_by", "revoked_at", "sig"}`` is signed by ``revoked_by``, which must be
the device's owner or a city operator.

A registration with ``class`` (``defs.v1.json#/$defs/device_class``: a recycling station, a transit gate, a
smart meter...) is a *city device*'s: its owner must be a city operator (`check_city_device`). A city device
issues receipts that attest citizens' readings of its registered kind (``services/common/receipts.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.common import didkey, kinds, schemas, signing
from services.common.events import rfc3339
from smartcity_sdk.ingest import DEVICE_SIG_FIELD
from smartcity_sdk.ingest import (
    sign_registration as sign_registration,  # the SDK's, still named here for callers
)

REGISTRATION_DEFINITION = "device_registration"
SIGNER_FIELD = "owner"
# A registration is stored and copied into every envelope of its device's readings, so it may carry
# nothing but these (the shared definition itself leaves room for more).
FIELDS = frozenset(
    {
        "device_id",
        "owner",
        "kind",
        "zone",
        "location",
        "replaces",
        "class",
        DEVICE_SIG_FIELD,
        signing.SIG_FIELD,
    }
)
REVOCATION_FIELDS = frozenset({"device_id", "revoked_by", "revoked_at", signing.SIG_FIELD})


class RegistrationError(ValueError):
    """A device registration that cannot be accepted."""


class InvalidRegistrationError(RegistrationError):
    """The registration does not have the shape of a registration (the message names the field)."""


class RegistrationSignatureError(RegistrationError):
    """The registration is not signed by its owner's key, or not proven by the device's."""


class OperatorRequiredError(RegistrationError):
    """A city device's registration (with ``class``) signed by a key that is not a city operator's."""


@dataclass(frozen=True)
class Device:
    """A registered device: the fields readings are checked against, the signed registration and its
    lifecycle (rotation links, revocation)."""

    device_id: str
    owner: str
    kind: str
    zone: str
    registration: dict[str, Any]
    registered_at: datetime
    replaces: str | None = None
    replaced_by: str | None = None
    revoked_at: datetime | None = None
    revocation: dict[str, Any] | None = None

    @property
    def device_class(self) -> str | None:
        """The class of a city device (registered by an operator), None for a citizen's device."""
        return self.registration.get("class")

    @property
    def active(self) -> bool:
        """False once revoked (or retired by a key rotation)."""
        return self.revoked_at is None

    def as_json(self) -> dict[str, Any]:
        """The device as the API answers it."""
        return {
            "device_id": self.device_id,
            "owner": self.owner,
            "kind": self.kind,
            "zone": self.zone,
            "location": self.registration.get("location"),
            "status": "active" if self.active else "revoked",
            "registration": self.registration,
            "registered_at": rfc3339(self.registered_at),
            "replaces": self.replaces,
            "replaced_by": self.replaced_by,
            "revoked_at": rfc3339(self.revoked_at) if self.revoked_at else None,
            "revocation": self.revocation,
        }


def check_registration(body: Any) -> None:
    """Raise `InvalidRegistrationError` or `RegistrationSignatureError` unless `body` is a registration
    (per ``defs.v1.json#/$defs/device_registration``, no other fields, decodable did:keys, a kind of the
    registry) proven by its device and signed by its owner."""
    try:
        schemas.validate_definition(REGISTRATION_DEFINITION, body)
    except schemas.SchemaError as exc:
        raise InvalidRegistrationError(str(exc)) from exc
    if unknown := sorted(set(body) - FIELDS):
        raise InvalidRegistrationError(f"unexpected field(s): {', '.join(unknown)}")
    for field in ("device_id", SIGNER_FIELD, "replaces"):
        if field in body:
            try:
                didkey.decode(body[field])
            except didkey.DidKeyError as exc:
                raise InvalidRegistrationError(f"{field}: {exc}") from exc
    if not kinds.exists(body["kind"]):
        raise InvalidRegistrationError(
            f"kind: {body['kind']!r} is not a reading kind; one of {', '.join(sorted(kinds.registry()))}"
        )
    if body.get("replaces") == body["device_id"]:
        raise InvalidRegistrationError("replaces: a device cannot replace itself")
    if DEVICE_SIG_FIELD not in body:
        raise InvalidRegistrationError(f"(root): {DEVICE_SIG_FIELD!r} (the device's proof) is required")
    try:
        signing.verify_detached(body, "device_id", DEVICE_SIG_FIELD, exclude=(signing.SIG_FIELD,))
    except signing.SignatureError as exc:
        raise RegistrationSignatureError(f"the registration is not proven by its device: {exc}") from exc
    try:
        signing.verify(body, SIGNER_FIELD)
    except signing.SignatureError as exc:
        raise RegistrationSignatureError(f"the registration is not signed by its owner: {exc}") from exc


def check_city_device(body: Mapping[str, Any], operators: Collection[str]) -> None:
    """Raise `OperatorRequiredError` if `body`, a registration that passed `check_registration`, is a city
    device's (it has ``class``) and its owner, who signed it, is not one of the city's `operators`."""
    if "class" in body and body[SIGNER_FIELD] not in operators:
        raise OperatorRequiredError(
            f"owner: a city device ({body['class']}) is registered by a city operator, and {body[SIGNER_FIELD]} "
            "is not one"
        )


def same_registration(stored: Mapping[str, Any], submitted: Mapping[str, Any]) -> bool:
    """True if `submitted` says the same as `stored` (the signatures aside), i.e. it is a harmless repeat."""
    ignored = {signing.SIG_FIELD, DEVICE_SIG_FIELD}
    return {k: v for k, v in stored.items() if k not in ignored} == {
        k: v for k, v in submitted.items() if k not in ignored
    }


def check_revocation(body: Any, device: Device, operators: Collection[str]) -> None:
    """Raise `InvalidRegistrationError` or `RegistrationSignatureError` unless `body` is a revocation of
    `device` signed by its owner or by one of the city's `operators`."""
    if not isinstance(body, dict):
        raise InvalidRegistrationError("(root): a revocation is an object")
    if missing := sorted(REVOCATION_FIELDS - set(body)):
        raise InvalidRegistrationError(f"(root): missing field(s): {', '.join(missing)}")
    if unknown := sorted(set(body) - REVOCATION_FIELDS):
        raise InvalidRegistrationError(f"unexpected field(s): {', '.join(unknown)}")
    if body["device_id"] != device.device_id:
        raise InvalidRegistrationError("device_id: the revocation is for another device")
    try:
        schemas.validate_definition("rfc3339_utc", body["revoked_at"])
    except schemas.SchemaError as exc:
        raise InvalidRegistrationError(f"revoked_at: {exc}") from exc
    if body["revoked_by"] != device.owner and body["revoked_by"] not in operators:
        raise RegistrationSignatureError(
            "revoked_by: only the device's owner or a city operator may revoke it"
        )
    try:
        signing.verify(body, "revoked_by")
    except signing.SignatureError as exc:
        raise RegistrationSignatureError(f"the revocation is not signed by revoked_by: {exc}") from exc
