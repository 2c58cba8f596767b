"""Signed ingest objects (registrations, readings, revocations) built the way devices and owners build them,
and the ingest metrics, for the ingest integration tests."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from services.common.events import now_rfc3339
from services.common.signing import Keypair
from services.ingest.devices import sign_registration


def registration(
    owner: Keypair, device: Keypair, kind: str = "noise", zone: str = "old-town", **extra: Any
) -> dict:
    """A registration proven by `device` and signed by `owner`."""
    body = {"device_id": device.did, "owner": owner.did, "kind": kind, "zone": zone, **extra}
    return sign_registration(owner, device, body)


def reading(
    device: Keypair, seq: int, *, kind: str = "noise", zone: str = "old-town", **overrides: Any
) -> dict:
    """A noise reading of `device` timestamped now, signed by it."""
    body = {
        "device_id": device.did,
        "seq": seq,
        "ts": now_rfc3339(),
        "kind": kind,
        "zone": zone,
        "values": {"db_a": 40.0 + seq % 50},
        **overrides,
    }
    return device.sign(body)


def revocation(device: Keypair, signer: Keypair) -> dict:
    """A revocation of `device` signed by `signer`."""
    return signer.sign({"device_id": device.did, "revoked_by": signer.did, "revoked_at": now_rfc3339()})


def rejected(reason: str) -> float:
    """The current value of the rejections counter of `reason`."""
    return REGISTRY.get_sample_value("smartcity_ingest_readings_rejected_total", {"reason": reason}) or 0.0


def accepted() -> float:
    """The current value of the accepted readings counter."""
    return REGISTRY.get_sample_value("smartcity_ingest_readings_accepted_total", {}) or 0.0


def city_registration(
    operator: Keypair, device: Keypair, device_class: str, kind: str, zone: str = "old-town"
) -> dict:
    """A city device's registration (`device_class`, attesting readings of `kind`), signed by `operator`."""
    return registration(operator, device, kind=kind, zone=zone, **{"class": device_class})


def air_quality_readings(device: Keypair, count: int, first_seq: int = 1) -> list[dict[str, Any]]:
    """`count` air quality readings of `device` taken now (consent counts at a reading's own time), plausible in
    the simulated fleet's zone (no outlier) and never the same twice in a row (not stuck)."""
    now = now_rfc3339()
    return [
        device.sign(
            {
                "device_id": device.did,
                "seq": seq,
                "ts": now,
                "kind": "air_quality",
                "zone": "old-town",
                "values": {"pm2_5": 7.5 + seq % 4, "pm10": 14.0, "no2": 20.5},
            }
        )
        for seq in range(first_seq, first_seq + count)
    ]
