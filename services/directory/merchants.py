"""Merchant registrations, the city's verifications, and the facts the directory publishes (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from services.common import didkey, signing
from services.common.events import cloudevent_headers, rfc3339
from services.common.kafka import OutgoingRecord
from services.common.topics import MERCHANTS
from services.directory import hours
from services.directory.categories import CATEGORIES, is_category

EVENT_TYPE = "city.merchant.v1"
EVENT_SOURCE = "smartcity/directory"
SIGNER_FIELD = "wallet"
VERIFIER_FIELD = "verifier"

# No control characters: names and addresses are shown to people, and PostgreSQL text cannot hold NUL.
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
Currency = Literal["CITY", "AID", "CREDIT"]


def _did_key(cls: type, value: str) -> str:
    try:
        didkey.decode(value)
    except didkey.DidKeyError as exc:
        raise ValueError(f"not an Ed25519 did:key: {exc}") from exc
    return value


def _known_category(cls: type, value: str) -> str:
    if not is_category(value):
        raise ValueError(f"unknown category {value!r}; one of {', '.join(CATEGORIES)}")
    return value


class MerchantRegistration(BaseModel):
    """What a merchant's wallet signs to register, or update, its entry in the directory."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)

    wallet: str = Field(description="The merchant's wallet (did:key); it signs the registration.")
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_PRINTABLE)]
    category: str = Field(description=f"One of: {', '.join(CATEGORIES)}.")
    locally_owned: bool
    accepts: list[Currency] = Field(min_length=1, description="Currencies the merchant accepts.")
    address: Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=_PRINTABLE)] | None = None
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None
    description: Annotated[str, StringConstraints(max_length=2000, pattern=_PRINTABLE)] | None = None
    chain: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_PRINTABLE)] | None = Field(
        default=None, description="The brand of the chain the business belongs to, if any."
    )
    hours: dict[str, list[str]] | None = Field(
        default=None,
        description='Opening hours in the city\'s local time: {"mon": ["08:00-12:00", "13:00-18:00"], ...}; '
        "an interval ending at or before its start runs past midnight.",
    )
    active: bool = Field(default=True, description="False once the business has closed.")
    issued_at: AwareDatetime | None = Field(
        default=None,
        strict=False,
        description="When the owner signed it (RFC 3339). Once a merchant's registration carries one, every "
        "update must carry a later one, so an old registration cannot be replayed over a newer one.",
    )
    sig: str = Field(description="base64url Ed25519 signature by the wallet over the JCS bytes without sig.")

    _wallet = field_validator("wallet")(_did_key)
    _category = field_validator("category")(_known_category)

    @field_validator("accepts")
    @classmethod
    def _unique_currencies(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a currency is listed twice")
        return value

    @field_validator("hours")
    @classmethod
    def _valid_hours(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        return None if value is None else hours.check_schedule(value)

    @model_validator(mode="after")
    def _both_coordinates(self) -> MerchantRegistration:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon go together")
        return self


def check_registration(body: Any) -> MerchantRegistration:
    """The registration `body` holds, if it is signed by its wallet.

    Raises pydantic's `ValidationError` (naming the fields) if it is not a registration, and
    `signing.SignatureError` if the wallet did not sign it.
    """
    registration = MerchantRegistration.model_validate(body)
    signing.verify(body, SIGNER_FIELD)
    return registration


class MerchantVerification(BaseModel):
    """What a key with the city's directory role signs to vouch for a merchant's category and local ownership.

    It names the registration the city checked (its hash), so it applies only to the facts the city saw, and
    its time orders successive verifications, so an old one cannot be replayed over a newer one.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    merchant: str = Field(description="The merchant's wallet (did:key).")
    registration: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] = Field(
        description="SHA-256 (hex) of the JCS bytes of the signed registration the city checked."
    )
    category: str = Field(description=f"The category the city found: one of {', '.join(CATEGORIES)}.")
    locally_owned: bool = Field(description="Whether the city found the business locally owned.")
    verified_at: AwareDatetime = Field(strict=False, description="When the city verified (RFC 3339).")
    verifier: str = Field(description="did:key of the city's key with the directory role; it signs this.")
    sig: str = Field(
        description="base64url Ed25519 signature by the verifier over the JCS bytes without sig."
    )

    _did_keys = field_validator("merchant", "verifier")(_did_key)
    _category = field_validator("category")(_known_category)


class NotAVerifierError(ValueError):
    """The verification is signed by a key without the directory role."""


def registration_hash(signed: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the JCS bytes of a signed registration: how a verification names what it checked."""
    return signing.sha256_hex(signing.canonical_bytes(dict(signed)))


def check_verification(body: Any, verifiers: Collection[str]) -> MerchantVerification:
    """The verification `body` holds, if a key of `verifiers` (the directory role) signed it.

    Raises pydantic's `ValidationError` if it is not a verification, `NotAVerifierError` if its verifier lacks
    the role, and `signing.SignatureError` if the verifier did not sign it.
    """
    verification = MerchantVerification.model_validate(body)
    if verification.verifier not in verifiers:
        raise NotAVerifierError(f"{verification.verifier} does not hold the directory role")
    signing.verify(body, VERIFIER_FIELD)
    return verification


@dataclass(frozen=True)
class Merchant:
    """A merchant as the directory holds it."""

    wallet: str
    name: str
    category: str
    locally_owned: bool
    accepts: list[str]
    address: str | None
    lat: float | None
    lon: float | None
    verified: bool
    registration: dict[str, Any]
    registered_at: datetime
    updated_at: datetime
    description: str | None = None
    chain: str | None = None
    hours: dict[str, list[str]] | None = None
    active: bool = True
    # The city's signed verification; while it holds, `category` and `locally_owned` are the city's findings.
    verification: dict[str, Any] | None = None

    def fact(self) -> dict[str, Any]:
        """The merchant's latest facts, the ``city.merchants.v1`` value (schemas/merchants.v1.json).

        ``category`` and ``locally_owned`` are the city's findings when ``verified`` (the signed
        ``verification`` says so), else the owner's claims (the signed ``registration``).
        """
        value: dict[str, Any] = {
            "wallet": self.wallet,
            "name": self.name,
            "category": self.category,
            "locally_owned": self.locally_owned,
            "verified": self.verified,
            "accepts": list(self.accepts),
            "active": self.active,
            "updated_at": rfc3339(self.updated_at),
            "registration": self.registration,
        }
        optional = {
            "address": self.address,
            "lat": self.lat,
            "lon": self.lon,
            "description": self.description,
            "chain": self.chain,
            "hours": self.hours,
            "verification": self.verification,
        }
        value.update({k: v for k, v in optional.items() if v is not None})
        return value

    def as_json(self) -> dict[str, Any]:
        """The merchant as the API answers it: its facts and when it first registered."""
        return {**self.fact(), "registered_at": rfc3339(self.registered_at)}


class StaleRegistrationError(ValueError):
    """A registration older than (or as old as, but different from) the one held: a replay."""


def check_newer(
    previous: Merchant | None, registration: MerchantRegistration, signed: Mapping[str, Any]
) -> None:
    """Raise `StaleRegistrationError` unless `registration` may replace `previous`'s: once registrations carry
    ``issued_at``, each must be later than the last (the very same signed object again is a harmless retry).
    """
    if previous is None or "issued_at" not in previous.registration or dict(signed) == previous.registration:
        return
    held = MerchantRegistration.model_validate(previous.registration).issued_at
    if held is not None and (registration.issued_at is None or registration.issued_at <= held):
        raise StaleRegistrationError(f"the merchant holds a registration issued at {held.isoformat()}")


def kept_verification(previous: Merchant | None, registration: MerchantRegistration) -> dict[str, Any] | None:
    """The city's verification that still holds once the owner sends `registration`.

    It holds while the claims the city checked (category, local ownership) are unchanged: a new name, hours or
    address keep it; a changed claim needs a new verification.
    """
    if previous is None or previous.verification is None:
        return None
    if any(previous.registration.get(c) != getattr(registration, c) for c in ("category", "locally_owned")):
        return None
    return previous.verification


def outgoing_record(merchant: Merchant) -> OutgoingRecord:
    """The compacted-topic record of a merchant's facts (key = wallet); the CloudEvent id is the hash of
    the facts, so publishing the same facts twice is recognisably the same event."""
    value = merchant.fact()
    event_id = signing.sha256_hex(signing.canonical_bytes(value))
    return OutgoingRecord(
        topic=MERCHANTS,
        key=merchant.wallet,
        value=value,
        headers=cloudevent_headers(EVENT_TYPE, EVENT_SOURCE, event_id, time=value["updated_at"]),
    )
