"""Signed test objects built the way the platform builds them."""

from __future__ import annotations

from typing import Any

from services.common import ids
from services.common.signing import Keypair


def signed_reward(
    owner: Keypair,
    device: Keypair | None = None,
    *,
    seq: int = 1,
    amount: int = 1500,
    rule: str = "air-quality",
    registration_signer: Keypair | None = None,
) -> dict[str, Any]:
    """A reward with real signed evidence, ids derived as the schemas describe."""
    device = device or Keypair.generate()
    reading = device.sign(
        {
            "device_id": device.did,
            "seq": seq,
            "ts": "2026-11-21T09:59:58.250Z",
            "kind": "air",
            "zone": "centre",
            "values": {"pm25": 12.5, "no2": 31},
        }
    )
    registration = (registration_signer or owner).sign(
        {"device_id": device.did, "owner": owner.did, "kind": "air", "zone": "centre"}
    )
    reading_id = ids.reading_id(device.did, seq)
    return {
        "reward_id": ids.reward_id(reading_id, rule),
        "wallet": owner.did,
        "amount": amount,
        "currency": "CITY",
        "rule": rule,
        "policy_version": "2026.11",
        "reading_id": reading_id,
        "earned_at": "2026-11-21T09:59:59.000Z",
        "evidence": {"reading": reading, "registration": registration},
    }
