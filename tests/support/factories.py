"""Signed test objects built the way the platform builds them."""

from __future__ import annotations

from typing import Any

from services.common import ids
from services.common.events import now_rfc3339
from services.common.signing import Keypair
from services.directory.merchants import registration_hash


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


def merchant_registration(key: Keypair, **fields: Any) -> dict[str, Any]:
    """A merchant's registration for the directory (POST /v1/merchants), signed by its wallet."""
    body = {
        "wallet": key.did,
        "name": "Corner Grocer",
        "category": "grocery",
        "locally_owned": True,
        "accepts": ["CITY", "AID"],
        "lat": 52.37,
        "lon": 4.9,
        **fields,
    }
    return key.sign(body)


def merchant_verification(
    city: Keypair, registration: dict[str, Any], *, verified_at: str | None = None, **found: Any
) -> dict[str, Any]:
    """The city's verification of `registration` (POST /v1/merchants/{wallet}/verification), signed by a key
    with the directory role; `found` overrides the category or local ownership the city found."""
    return city.sign(
        {
            "merchant": registration["wallet"],
            "registration": registration_hash(registration),
            "category": found.get("category", registration["category"]),
            "locally_owned": found.get("locally_owned", registration["locally_owned"]),
            "verified_at": verified_at or now_rfc3339(),
            "verifier": city.did,
        }
    )


def signed_transfer(
    sender: Keypair, to: str, amount: int, nonce: int, currency: str = "CITY"
) -> dict[str, Any]:
    """A peer-to-peer transfer for the ledger (POST /v1/transfers), signed by its sender."""
    return sender.sign({"from": sender.did, "to": to, "amount": amount, "currency": currency, "nonce": nonce})


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def reencoded_signatures(sig: str) -> list[str]:
    """Other 86-character texts that lenient base64url decoders read as the same 64 bytes as `sig`: its last
    character with its two lowest bits set otherwise (86 characters carry 516 bits for 512: the last
    character's four low bits are spare)."""
    last = _B64URL.index(sig[-1])
    base = last & ~3
    return [sig[:-1] + _B64URL[base | bits] for bits in range(4) if base | bits != last]


def reencoded(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` with its signature written another way: the same 64 bytes, another text."""
    return {**obj, "sig": reencoded_signatures(obj["sig"])[0]}
