"""Signed sample readings for the rewards tests (built the way ingest publishes them), checked here."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from services.common import schemas, signing
from services.common.signing import Keypair
from services.common.topics import READINGS

TS = "2026-05-04T10:15:30.250Z"
RECEIVED_AT = "2026-05-04T10:15:31.000Z"


def expected_reading_id(device_id: str, seq: int) -> str:
    """The schema's definition, computed independently of the code under test."""
    return hashlib.sha256(f"{device_id}/{seq}".encode()).hexdigest()


@dataclass(frozen=True)
class Device:
    """A device registered by its owner: the two keys and the signed registration."""

    owner: Keypair = field(default_factory=Keypair.generate)
    key: Keypair = field(default_factory=Keypair.generate)
    kind: str = "air_quality"
    zone: str = "old-town"

    @property
    def did(self) -> str:
        return self.key.did

    @property
    def registration(self) -> dict[str, Any]:
        return self.owner.sign(
            {"device_id": self.did, "owner": self.owner.did, "kind": self.kind, "zone": self.zone}
        )

    def reading(self, seq: int, **overrides: Any) -> dict[str, Any]:
        body = {"device_id": self.did, "seq": seq, "ts": TS, "kind": self.kind, "zone": self.zone}
        body["values"] = {"pm2_5": 12.5, "pm10": 20, "no2": 31.5}
        body.update(overrides)
        return self.key.sign(body)

    def envelope(self, seq: int, **overrides: Any) -> dict[str, Any]:
        """The city.readings.v1 value of this device's reading number `seq` (received when it was taken,
        if its time is overridden)."""
        return {
            "reading_id": expected_reading_id(self.did, seq),
            "owner": self.owner.did,
            "received_at": overrides.get("ts", RECEIVED_AT),
            "reading": self.reading(seq, **overrides),
            "registration": self.registration,
        }


def test_sample_envelope_is_a_valid_signed_reading():
    device = Device()
    envelope = device.envelope(7)
    schemas.validate(READINGS, envelope)
    signing.verify(envelope["reading"], "device_id")
    signing.verify(envelope["registration"], "owner")
    assert envelope["reading_id"] == hashlib.sha256(f"{device.did}/7".encode()).hexdigest()


def policy_document(version: str = "t1", **changes: Any) -> dict[str, Any]:
    """A small reward policy with round numbers (the city's file is not what the tests check)."""
    document: dict[str, Any] = {
        "version": version,
        "caps": {"device_per_hour": 1200, "wallet_per_day": 5000},
        "quality": {
            "stuck_repeats": 5,
            "burst": {"max_readings": 30, "per_seconds": 60},
            "outlier": {"enabled": True, "robust_z": 6, "min_samples": 20},
        },
        "behaviour": {"micro_city_per_kg_co2e": 100000},
        "kinds": {
            "air_quality": {
                "data_reward": 500,
                "values": {
                    "pm2_5": {"min": 0, "max": 1000},
                    "pm10": {"min": 0, "max": 2000},
                    "no2": {"min": 0, "max": 2000, "required": False},
                },
            },
            "bike_trip": {
                "values": {"km": {"min": 0.1, "max": 300}},
                "behaviour": {"factors": {"km": {"kg_co2e_per_unit": 0.168, "source": "test factor"}}},
                "quality": {"outlier": {"enabled": False, "robust_z": 6, "min_samples": 20}},
            },
        },
    }
    document.update(changes)
    return document


def test_the_test_policy_fits_the_policy_schema():
    schemas.validate_against("policy.v1.json", policy_document())
