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
    kind: str = "air-quality"
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
        body["values"] = {"pm25": 12.5, "pm10": 20}
        body.update(overrides)
        return self.key.sign(body)

    def envelope(self, seq: int, **overrides: Any) -> dict[str, Any]:
        """The city.readings.v1 value of this device's reading number `seq`."""
        return {
            "reading_id": expected_reading_id(self.did, seq),
            "owner": self.owner.did,
            "received_at": RECEIVED_AT,
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
