"""Signed test objects built the way the platform builds them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from services.common import attestation, ids, receipts, signing
from services.common.events import cloudevent_headers, now_rfc3339
from services.common.kafka import OutgoingRecord, attested
from services.common.policy import Policy, parse_policy
from services.common.roles import Role
from services.common.signing import Keypair
from services.common.topics import READINGS, REWARDS
from services.directory.merchants import registration_hash
from services.ledger.rewards import reading_envelope

INGEST = Keypair.from_seed(b"ingest-attestor-of-the-test-city")
"""The ingest attestor key of the tests' rewards (seeded into the test ledgers' ingest-attestor role)."""
ORACLE = Keypair.from_seed(b"rewards-oracle-of-the-test-city!")
"""The rewards oracle key of the tests' rewards (seeded into the test ledgers' rewards-oracle role)."""
DIRECTORY = Keypair.from_seed(b"merchant-verifier-of-test-city!!")
"""The key attesting the tests' merchants records (seeded into the test ledgers' merchant-verifier role)."""
TEST_ROLES = {
    Role.INGEST_ATTESTOR: [INGEST.did],
    Role.REWARDS_ORACLE: [ORACLE.did],
    Role.POLICY_PUBLISHER: [ORACLE.did],
    Role.MERCHANT_VERIFIER: [DIRECTORY.did],
}
"""`LedgerSettings.genesis_roles` that make `INGEST`, `ORACLE` and `DIRECTORY` hold their roles."""

TEST_POLICY = parse_policy(
    {
        "version": "test-1",
        "caps": {"device_per_hour": 10**15, "wallet_per_day": 10**15},
        "quality": {
            "stuck_repeats": 5,
            "burst": {"max_readings": 100, "per_seconds": 60},
            "outlier": {"enabled": False, "robust_z": 6, "min_samples": 20},
        },
        "behaviour": {"micro_city_per_kg_co2e": 100000},
        "kinds": {
            "air": {
                "data_reward": 10**13,
                "values": {"pm25": {"min": 0, "max": 1000}, "no2": {"min": 0, "max": 2000}},
            }
        },
    }
)
"""The policy of the tests' rewards: rule ``data.air`` pays up to 10 million CITY, caps out of reach."""
RULE = "data.air"


def policy_publication(policy: Policy = TEST_POLICY, publisher: Keypair = ORACLE) -> dict[str, Any]:
    """The signed body of ``POST /v1/policies`` putting `policy` on the chain."""
    return publisher.sign({"publisher": publisher.did, "document": dict(policy.document or {})})


def signed_reward(
    owner: Keypair,
    device: Keypair | None = None,
    *,
    seq: int = 1,
    amount: int = 1500,
    rule: str = RULE,
    registration_signer: Keypair | None = None,
    ingest: Keypair = INGEST,
    policy: Policy = TEST_POLICY,
    person: str | None = None,
    receipt_by: tuple[Keypair, str] | None = None,
) -> dict[str, Any]:
    """A reward with real signed evidence attested by `ingest`, ids derived as the schemas describe; with
    `person`, ingest attests the wallet bound to that person (the envelope's and the evidence's ``person``);
    with `receipt_by` (a city device's key and class), the reading carries that city device's receipt."""
    device = device or Keypair.generate()
    taken_at = "2026-11-21T09:59:58.250Z"
    reading = device.sign(
        {
            "device_id": device.did,
            "seq": seq,
            "ts": taken_at,
            "kind": "air",
            "zone": "centre",
            "values": {"pm25": 12.5, "no2": 31},
        }
    )
    if receipt_by is not None:
        reading = receipted(device, *receipt_by, reading)
    registration = (registration_signer or owner).sign(
        {"device_id": device.did, "owner": owner.did, "kind": "air", "zone": "centre"}
    )
    reading_id = ids.reading_id(device.did, seq)
    received_at = "2026-11-21T09:59:58.400Z"
    envelope = {
        "reading_id": reading_id,
        "owner": owner.did,
        "received_at": received_at,
        "reading": reading,
        "registration": registration,
    }
    if person is not None:
        envelope["person"] = person
    [header] = attestation.attest(ingest, READINGS.name, [attestation.encode(envelope)])
    return {
        "reward_id": ids.reward_id(reading_id, rule),
        "wallet": owner.did,
        "amount": amount,
        "currency": "CITY",
        "rule": rule,
        "policy_version": policy.version,
        "policy_hash": policy.hash,
        "reading_id": reading_id,
        "earned_at": taken_at,
        "evidence": {
            "reading": reading,
            "registration": registration,
            "received_at": received_at,
            "attestation": json.loads(header),
        }
        | ({"person": person} if person is not None else {}),
    }


def ingest_batches(
    rewards: list[dict[str, Any]], batch: int, ingest: Keypair = INGEST
) -> list[dict[str, Any]]:
    """`rewards` with their readings attested again by `ingest` in batches of `batch` (as a busy ingest does:
    one signature a request), instead of one signature each."""
    out = []
    for start in range(0, len(rewards), batch):
        chunk = rewards[start : start + batch]
        envelopes = [attestation.encode(reading_envelope(r)) for r in chunk]
        headers = attestation.attest(ingest, READINGS.name, envelopes)
        for reward, header in zip(chunk, headers, strict=True):
            out.append({**reward, "evidence": {**reward["evidence"], "attestation": json.loads(header)}})
    return out


def oracle_attestations(rewards: Sequence[dict[str, Any]], oracle: Keypair = ORACLE) -> list[dict[str, Any]]:
    """The rewards oracle's attestation of each of `rewards`, as one batch."""
    headers = attestation.attest(oracle, REWARDS.name, [attestation.encode(r) for r in rewards])
    return [json.loads(h) for h in headers]


def oracle_attested(reward: dict[str, Any], oracle: Keypair = ORACLE) -> dict[str, Any]:
    """The rewards oracle's attestation of one reward (a batch of one)."""
    return oracle_attestations([reward], oracle)[0]


def reward_records(rewards: Sequence[dict[str, Any]], oracle: Keypair = ORACLE) -> list[OutgoingRecord]:
    """``city.rewards.v1`` records of `rewards`, attested by `oracle` as the rewards worker does."""
    records = [
        OutgoingRecord(REWARDS, r["wallet"], r, cloudevent_headers("city.reward.v1", "tests", r["reward_id"]))
        for r in rewards
    ]
    return attested(oracle, records)


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


def receipted(
    device: Keypair, city_device: Keypair, device_class: str, reading: Mapping[str, Any]
) -> dict[str, Any]:
    """`reading` (signed or not) as a behaviour reading the city pays: a receipt of `city_device` (a city device
    of `device_class`, registered by an operator) binding it, then signed by the citizen's `device`."""
    return receipts.attested_reading(device, city_device, device_class, signing.unsigned(reading))
