"""The signed requests the identity service accepts, and what they mean. Pure (no I/O).

Every mutation, and every read of a person's own data, is a signed object (`services.common.signing`) with
an ``issued_at`` timestamp: a request older than the allowed skew is refused, so a captured request cannot
be replayed later. Mutations also get ids derived from their signed bytes, so a replay within the window is
the same mutation again (idempotent), never a second one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)

from services.common import didkey, signing
from services.common.consents import parse_time

_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
_TEXT = r"^[^\x00\x7f]+$"  # notices may hold line breaks; PostgreSQL text cannot hold NUL
Name = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]


class RequestError(ValueError):
    """A signed request that is not signed by whom it names, is stale, or is from a key without the role."""

    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail = status, kind, detail


def _did_key(cls: type, value: str) -> str:
    try:
        didkey.decode(value)
    except didkey.DidKeyError as exc:
        raise ValueError(f"not an Ed25519 did:key: {exc}") from exc
    return value


def _rfc3339(cls: type, value: str) -> str:
    parse_time(value)
    return value


class Signed(BaseModel):
    """Fields every signed request has."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)

    issued_at: str = Field(description="RFC 3339 UTC time the request was signed; it must be recent.")
    sig: str = Field(description="base64url Ed25519 signature over the JCS bytes of the object without sig.")

    _issued_at = field_validator("issued_at")(_rfc3339)


Zone = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]


class Registration(Signed):
    """A person registers a did:key they control; signed by that key."""

    did: str
    zone: Zone | None = Field(
        default=None, description="The city zone the person lives or stays in: notices to a zone's groups."
    )
    _did = field_validator("did")(_did_key)


Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Enrolment(Signed):
    """A caseworker enrols a person without a device into a custodial wallet."""

    caseworker: str
    action: Literal["enrol"]
    photo_sha256: Sha256Hex | None = Field(
        default=None,
        description="SHA-256 of the person's photo the caseworker took, kept in the city's case files: the "
        "photo on record that a later PIN reset can name as its re-proof.",
    )
    zone: Zone | None = Field(
        default=None,
        description="The zone the person stays in (a shelter's, an outreach team's): notices to it.",
    )
    _caseworker = field_validator("caseworker")(_did_key)


class PhotoProof(BaseModel):
    """The caseworker compared the person with the photo on record, named by its hash."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    photo_sha256: Sha256Hex


class CredentialProof(BaseModel):
    """The person showed their resident credential (an SD-JWT, e.g. the QR code of a printed card) issued to
    the did. It needs no key binding: the key is what was lost; the caseworker's order is the binding."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    credential: Annotated[str, StringConstraints(min_length=1, max_length=32 * 1024)]


class PinReset(Signed):
    """A caseworker resets the PIN of a custodial wallet, on a re-proof of the person. The did and the funds
    stay; the new PIN travels beside the order, never inside what is signed and stored."""

    caseworker: str
    action: Literal["reset-pin"]
    did: str
    proof: PhotoProof | CredentialProof
    _dids = field_validator("caseworker", "did")(_did_key)


class SelfRequest(Signed):
    """A person reads their own data (notices, consents); signed by their key."""

    did: str
    action: Literal["read-notices", "list-consents"]
    aid_holder: str | None = Field(
        default=None,
        description="read-notices: the reader's AID holder key (services/common/aid_holder.py), so that notices "
        "to their zone's AID holders reach them. Whether a key holds AID is public on the chain, so naming "
        "another's tells the reader nothing new.",
    )
    _did = field_validator("did")(_did_key)

    @field_validator("aid_holder")
    @classmethod
    def _aid_holder(cls, value: str | None) -> str | None:
        return None if value is None else _did_key(cls, value)


class ResidentFacts(BaseModel):
    """What the city knows of a resident, from which the credential's claims are computed."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    given_name: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_PRINTABLE)]
    family_name: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_PRINTABLE)]
    birthdate: str = Field(description="YYYY-MM-DD")
    address: Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=_PRINTABLE)] | None = None
    photo_sha256: Sha256Hex | None = None

    @field_validator("birthdate")
    @classmethod
    def _date(cls, value: str) -> str:
        date.fromisoformat(value)
        return value


class CredentialOrder(Signed):
    """An issuer-role key orders a resident credential for a registered person."""

    issuer: str
    action: Literal["issue-credential"]
    subject: str
    facts: ResidentFacts
    _dids = field_validator("issuer", "subject")(_did_key)


class RevocationOrder(Signed):
    """An issuer-role key revokes a credential."""

    issuer: str
    action: Literal["revoke-credential"]
    credential_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
    _issuer = field_validator("issuer")(_did_key)


NOTICE_MAX_DAYS = 90
"""How far past its ``issued_at`` a notice may expire: a notice is news, not a standing record."""


class CustodyGroup(BaseModel):
    """Everyone whose wallet the city holds (custody ``custodial``) when they read their inbox."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    custody: Literal["custodial"]


class CredentialGroup(BaseModel):
    """Everyone who, when they read their inbox, holds a valid (unexpired, unrevoked) credential of a type."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    credential: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_PRINTABLE)] = Field(
        description="The credential type (vct), e.g. https://smartcity.example/credentials/resident/v1."
    )


class AidZoneGroup(BaseModel):
    """Everyone who, when they read their inbox, holds AID on the ledger and stays in a zone."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    aid_zone: Zone


GROUP_KINDS = ("custody", "credential", "aid_zone")


def _group_kind(value: Any) -> str | None:
    """The kind of a group object: its one key, if that names a kind; None (a 422) for anything else."""
    if isinstance(value, Mapping) and len(value) == 1:
        (kind,) = value
        return kind if kind in GROUP_KINDS else None
    return None


Group = Annotated[
    Annotated[CustodyGroup, Tag("custody")]
    | Annotated[CredentialGroup, Tag("credential")]
    | Annotated[AidZoneGroup, Tag("aid_zone")],
    Discriminator(
        _group_kind,
        custom_error_type="unknown-group",
        custom_error_message='group must be {"custody": "custodial"}, {"credential": "<vct>"} or '
        '{"aid_zone": "<zone>"}',
    ),
]


class Notice(Signed):
    """A city service (notices role) posts a notice to one person (`recipient`) or to a `group`.

    A group is resolved when a person reads their inbox, not when the notice is posted, so it reaches whoever
    belongs then and is stored once. The signature covers `group` and `expires_at` like every other field.
    """

    sender: str
    recipient: str | None = None
    group: Group | None = Field(
        default=None,
        description='Instead of recipient: {"custody": "custodial"}, {"credential": vct} or {"aid_zone": zone}.',
    )
    title: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_PRINTABLE)]
    body: Annotated[str, StringConstraints(min_length=1, max_length=4000, pattern=_TEXT)]
    expires_at: str | None = Field(
        default=None,
        description=f"RFC 3339 UTC time after which inboxes no longer show the notice: after issued_at, at most "
        f"{NOTICE_MAX_DAYS} days later.",
    )
    _sender = field_validator("sender")(_did_key)

    @field_validator("recipient")
    @classmethod
    def _recipient(cls, value: str | None) -> str | None:
        return None if value is None else _did_key(cls, value)

    @field_validator("expires_at")
    @classmethod
    def _expires_at(cls, value: str | None) -> str | None:
        return None if value is None else _rfc3339(cls, value)

    @model_validator(mode="after")
    def _addressed_and_dated(self) -> Notice:
        if (self.recipient is None) == (self.group is None):
            raise ValueError("give exactly one of recipient (one person) or group")
        if self.expires_at is not None:
            issued, expires = parse_time(self.issued_at), parse_time(self.expires_at)
            if expires <= issued:
                raise ValueError("expires_at must be after issued_at")
            if expires - issued > timedelta(days=NOTICE_MAX_DAYS):
                raise ValueError(f"expires_at must be at most {NOTICE_MAX_DAYS} days after issued_at")
        return self

    @property
    def group_key(self) -> tuple[str, str] | None:
        """(kind, value) of the group, as stored: ("custody", "custodial"), ("credential", vct), ("aid_zone", zone)."""
        if isinstance(self.group, CustodyGroup):
            return "custody", self.group.custody
        if isinstance(self.group, CredentialGroup):
            return "credential", self.group.credential
        if isinstance(self.group, AidZoneGroup):
            return "aid_zone", self.group.aid_zone
        return None


class ServiceRecord(Signed):
    """A provider (shelter, clinic) records a service given to a person, who must have consented."""

    provider: str
    subject: str
    service: Name
    day: str = Field(description="YYYY-MM-DD the service was given.")
    _dids = field_validator("provider", "subject")(_did_key)

    @field_validator("day")
    @classmethod
    def _date(cls, value: str) -> str:
        date.fromisoformat(value)
        return value


SERVICE_RECORDS_CATEGORY = "services"
"""The consent category a person grants to a provider so that it may record the services it gives them."""

M = TypeVar("M", bound=Signed)


def check(
    model: type[M],
    obj: Any,
    signer_field: str,
    *,
    now: datetime,
    skew_s: int,
    role: Collection[str] | None = None,
    role_name: str = "",
) -> M:
    """Parse, verify and authorise a signed request; raises pydantic's ValidationError or `RequestError`.

    `role`, when given, lists the did:keys allowed to sign this kind of request.
    """
    request = model.model_validate(obj)
    try:
        signing.verify(obj, signer_field)
    except signing.SignatureError as exc:
        raise RequestError(400, "invalid-signature", f"not signed by {signer_field}: {exc}") from exc
    if role is not None and getattr(request, signer_field) not in role:
        raise RequestError(
            403, "forbidden", f"{getattr(request, signer_field)} does not have the {role_name} role"
        )
    issued_at = parse_time(request.issued_at)
    if abs((now - issued_at).total_seconds()) > skew_s:
        raise RequestError(400, "stale-request", f"issued_at must be within {skew_s} s of the server's time")
    return request


def request_id(obj: Mapping[str, Any]) -> str:
    """A stable id of a signed request: 32 hex digits of `signing.object_id` (SHA-256 of its JCS bytes
    without ``sig``), so the same request with its signature written another way is the same request."""
    return signing.object_id(obj)[:32]


def _age_on(birthdate: date, today: date) -> int:
    return today.year - birthdate.year - ((today.month, today.day) < (birthdate.month, birthdate.day))


def resident_claims(facts: ResidentFacts, city: str, today: date) -> dict[str, Any]:
    """The resident credential's claims, each to be selectively disclosable.

    The age_over_NN flags are computed by the issuer on `today` (as ISO 18013-5 mobile driving licences do),
    so a holder can prove "over 18" without showing a birth date. The address is there only if there is one.
    """
    age = _age_on(date.fromisoformat(facts.birthdate), today)
    claims: dict[str, Any] = {
        "given_name": facts.given_name,
        "family_name": facts.family_name,
        "birthdate": facts.birthdate,
        "age_over_18": age >= 18,
        "age_over_21": age >= 21,
        "age_over_65": age >= 65,
        "resident_of": city,
    }
    if facts.address is not None:
        claims["address"] = facts.address
    if facts.photo_sha256 is not None:
        claims["photo_sha256"] = facts.photo_sha256
    return claims


def credential_validity(issued: datetime, days: int) -> tuple[int, int]:
    """``iat`` and ``exp`` (seconds since the epoch) of a credential issued at `issued` for `days`."""
    issued = issued.astimezone(UTC)
    return int(issued.timestamp()), int((issued + timedelta(days=days)).timestamp())
