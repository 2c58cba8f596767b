"""Merchant registrations and the facts the directory publishes about merchants (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from services.common import didkey, signing
from services.common.events import cloudevent_headers, rfc3339
from services.common.kafka import OutgoingRecord
from services.common.topics import MERCHANTS
from services.directory.categories import CATEGORIES, is_category

EVENT_TYPE = "city.merchant.v1"
EVENT_SOURCE = "smartcity/directory"
SIGNER_FIELD = "wallet"

# No control characters: names and addresses are shown to people, and PostgreSQL text cannot hold NUL.
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
Currency = Literal["CITY", "AID", "CREDIT"]


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
    sig: str = Field(description="base64url Ed25519 signature by the wallet over the JCS bytes without sig.")

    @field_validator("wallet")
    @classmethod
    def _wallet_is_did_key(cls, value: str) -> str:
        try:
            didkey.decode(value)
        except didkey.DidKeyError as exc:
            raise ValueError(f"not an Ed25519 did:key: {exc}") from exc
        return value

    @field_validator("category")
    @classmethod
    def _known_category(cls, value: str) -> str:
        if not is_category(value):
            raise ValueError(f"unknown category {value!r}; one of {', '.join(CATEGORIES)}")
        return value

    @field_validator("accepts")
    @classmethod
    def _unique_currencies(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a currency is listed twice")
        return value

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

    def fact(self) -> dict[str, Any]:
        """The merchant's latest facts, the ``city.merchants.v1`` value (schemas/merchants.v1.json)."""
        value: dict[str, Any] = {
            "wallet": self.wallet,
            "name": self.name,
            "category": self.category,
            "locally_owned": self.locally_owned,
            "verified": self.verified,
            "accepts": list(self.accepts),
            "active": True,
            "updated_at": rfc3339(self.updated_at),
            "registration": self.registration,
        }
        optional = {"address": self.address, "lat": self.lat, "lon": self.lon}
        value.update({k: v for k, v in optional.items() if v is not None})
        return value

    def as_json(self) -> dict[str, Any]:
        """The merchant as the API answers it: its facts and when it first registered."""
        return {**self.fact(), "registered_at": rfc3339(self.registered_at)}


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
