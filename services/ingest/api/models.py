"""Ingest's answers as models (what its OpenAPI document shows, and what each route's answer is checked against),
and examples of its requests, made of real keys and signatures (`services.common.openapi`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from services.common.openapi import example_id, example_key, examples, schema_file
from smartcity_sdk.ingest import sign_reading, sign_registration

ALICE, SENSOR, OPERATOR = (example_key(n) for n in ("alice", "sensor", "operator"))
TIME = "2026-03-14T09:26:53Z"
REGISTRATION = sign_registration(
    ALICE,
    SENSOR,
    {
        "device_id": SENSOR.did,
        "owner": ALICE.did,
        "kind": "air_quality",
        "zone": "harbour",
        "location": {"lat": 52.3731, "lon": 4.8922},
    },
)
READING = sign_reading(
    SENSOR, seq=1042, kind="air_quality", zone="harbour", values={"pm2_5": 8.4, "pm10": 14.1}, ts=TIME
)
REVOCATION = ALICE.sign({"device_id": SENSOR.did, "revoked_by": ALICE.did, "revoked_at": TIME})
DEVICE = {
    "device_id": SENSOR.did,
    "owner": ALICE.did,
    "kind": "air_quality",
    "zone": "harbour",
    "location": {"lat": 52.3731, "lon": 4.8922},
    "status": "active",
    "registration": REGISTRATION,
    "registered_at": TIME,
    "replaces": None,
    "replaced_by": None,
    "revoked_at": None,
    "revocation": None,
}


class Device(BaseModel):
    """A registered device, its signed registration and its lifecycle (rotation links, revocation)."""

    model_config = examples(DEVICE)
    device_id: str
    owner: str
    kind: str
    zone: str
    location: dict[str, float | int] | None = Field(description="lat and lon, as registered.")
    status: str = Field(description="active, or revoked (also when a rotation retired it).")
    registration: Annotated[
        dict[str, Any], schema_file("defs.v1.device_registration", "The registration as its owner signed it.")
    ]
    registered_at: str
    replaces: str | None = Field(description="The device whose key this one rotated.")
    replaced_by: str | None = Field(description="The device that rotated this one's key.")
    revoked_at: str | None
    revocation: dict[str, Any] | None = Field(description="The signed revocation.")


class Devices(BaseModel):
    """Devices; a history lists a device's chain of keys, oldest first."""

    model_config = examples({"devices": [DEVICE]})
    devices: list[Device]


class Kind(BaseModel):
    kind: str
    title: str
    consent_category: str = Field(description="The category whose consent a reading of this kind needs.")
    units: dict[str, str] = Field(description="Each value's unit.")


class Kinds(BaseModel):
    """The reading kinds (schemas/kinds/<kind>.v1.json)."""

    model_config = examples(
        {
            "kinds": [
                {
                    "kind": "air_quality",
                    "title": "Air quality",
                    "consent_category": "environment",
                    "units": {"pm2_5": "µg/m³", "pm10": "µg/m³"},
                }
            ]
        }
    )
    kinds: list[Kind]


class ReadingResult(BaseModel):
    index: int = Field(description="The reading's place in the batch.")
    status: str = Field(description="accepted or rejected.")
    reason: str | None = Field(description="Why rejected: a code first (bad_signature, no_consent, ...).")


class ReadingsAnswer(BaseModel):
    """Each reading of the batch accepted or rejected, in order; sent once the broker has every accepted one."""

    model_config = examples(
        {
            "accepted": 1,
            "rejected": 1,
            "results": [
                {"index": 0, "status": "accepted", "reason": None},
                {"index": 1, "status": "rejected", "reason": "duplicate: seq 1041 is not above 1042"},
            ],
        }
    )
    accepted: int
    rejected: int
    results: list[ReadingResult]


class DecidedReward(BaseModel):
    rule: str
    amount: int = Field(description="micro-CITY.")


class DecisionReason(BaseModel):
    code: str
    detail: str
    rule: str | None = Field(None, description="The rule a cap cut.")


DECISION = {
    "reading_id": example_id("reading"),
    "wallet": ALICE.did,
    "device_id": SENSOR.did,
    "kind": "air_quality",
    "ts": TIME,
    "outcome": "rewarded",
    "rewards": [{"rule": "data.air_quality", "amount": 500}],
    "reasons": [],
    "policy_version": "2026.12-3",
    "decided_at": "2026-03-14T09:26:55Z",
}


class Decision(BaseModel):
    """What the rewards worker decided for one reading."""

    model_config = examples(DECISION)
    reading_id: str
    wallet: str
    device_id: str
    kind: str
    ts: str
    outcome: str = Field(description="rewarded or unrewarded.")
    rewards: list[DecidedReward]
    reasons: list[DecisionReason]
    policy_version: str
    decided_at: str


class Decisions(BaseModel):
    """A wallet's reward decisions, newest first by the reading's time."""

    model_config = examples(
        {
            "wallet": ALICE.did,
            "decisions": [DECISION],
            "next_before": None,
        }
    )
    wallet: str
    decisions: list[Decision]
    next_before: str | None = Field(description="`before` of the next page; null when there is no more.")


class Erasure(BaseModel):
    """What ingest erased for a person's request."""

    model_config = examples(
        {
            "request_id": example_id("erasure")[:32],
            "did": ALICE.did,
            "devices": 2,
            "decisions": 318,
            "erased_at": TIME,
        }
    )
    request_id: str
    did: str
    devices: int = Field(description="Devices revoked and stripped of their personal details.")
    decisions: int = Field(description="Reward decisions deleted.")
    erased_at: str


class Revocation(BaseModel):
    """A device's revocation, signed by revoked_by: its owner or a city operator."""

    device_id: str
    revoked_by: str
    revoked_at: str = Field(description="RFC 3339 UTC.")
    sig: str


class ReadingsBatch(BaseModel):
    """A batch of readings, each signed by its device."""

    readings: list[Annotated[dict[str, Any], schema_file("defs.v1.reading")]]
