"""Signed test objects built the way the platform builds them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from services.common import attestation, evidence, ids, memos, receipts, signing
from services.common.events import now_rfc3339
from services.common.kafka import OutgoingRecord, attested, batch_record
from services.common.policy import Policy, parse_policy
from services.common.roles import Role
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair
from services.common.topics import READINGS, REWARD_DECISIONS, REWARDS
from services.directory.merchants import registration_hash
from services.rewards.processor import reward as reward_value
from services.rewards.processor import reward_record
from services.rewards.readings import accept

INGEST = Keypair.from_seed(b"ingest-attestor-of-the-test-city")
"""The ingest attestor key of the tests' rewards (seeded into the test ledgers' ingest-attestor role)."""
ORACLE = Keypair.from_seed(b"rewards-oracle-of-the-test-city!")
"""The rewards oracle key of the tests' rewards (seeded into the test ledgers' rewards-oracle role)."""
DIRECTORY = Keypair.from_seed(b"merchant-verifier-of-test-city!!")
"""The key attesting the tests' merchants records (seeded into the test ledgers' merchant-verifier role)."""
AUDITOR = Keypair.from_seed(b"auditor-of-the-test-city-ledger!")
"""An auditor (seeded into the test ledgers' auditor role): reads any account."""
AS_AUDITOR = SignedReadAuth(AUDITOR)
"""``client.get(..., auth=AS_AUDITOR)``: a signed read by `AUDITOR`."""
TEST_ROLES = {
    Role.INGEST_ATTESTOR: [INGEST.did],
    Role.REWARDS_ORACLE: [ORACLE.did],
    Role.POLICY_PUBLISHER: [ORACLE.did],
    Role.MERCHANT_VERIFIER: [DIRECTORY.did],
    Role.AUDITOR: [AUDITOR.did],
}
"""`LedgerSettings.genesis_roles` that make `INGEST`, `ORACLE`, `DIRECTORY` and `AUDITOR` hold their roles."""

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
    """A ``city.rewards.v1`` value as the rewards worker makes it (`services.rewards.processor.reward`): the
    public reward committing to real signed evidence attested by `ingest`, and its disclosure. With `person`,
    ingest attests the wallet bound to that person; with `receipt_by` (a city device's key and class), the
    reading carries that city device's receipt."""
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
    envelope = {
        "reading_id": ids.reading_id(device.did, seq),
        "owner": owner.did,
        "received_at": "2026-11-21T09:59:58.400Z",
        "reading": reading,
        "registration": registration,
    }
    if person is not None:
        envelope["person"] = person
    raw = attestation.encode(envelope)
    [header] = attestation.attest(ingest, READINGS.name, [raw])
    accepted = accept(envelope, json.loads(header), raw)
    return reward_value(accepted, rule, amount, policy.version, policy.hash, ORACLE.seed)


def public(value: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """A ``city.rewards.v1`` value with its public reward changed (a tampered reward, say)."""
    return {**value, "reward": {**value["reward"], **changes}}


def envelope_of(value: Mapping[str, Any]) -> dict[str, Any]:
    """The readings envelope a ``city.rewards.v1`` value discloses."""
    return json.loads(value["disclosure"]["envelope"])


def recommitted(
    value: Mapping[str, Any], envelope: Mapping[str, Any], *, ingest: Keypair | None = None
) -> dict[str, Any]:
    """`value` disclosing `envelope` instead, committed to under the same salt (an oracle fed it); with
    `ingest`, attested by that key too (an attestor fed it), else still carrying the old attestation."""
    raw = attestation.encode(envelope)
    disclosure = {**value["disclosure"], "envelope": raw.decode()}
    if ingest is not None:
        [header] = attestation.attest(ingest, READINGS.name, [raw])
        disclosure["attestation"] = json.loads(header)
    salt = signing.b64url_decode(disclosure["salt"])
    return {
        "reward": {**value["reward"], "evidence": evidence.commitment(salt, raw)},
        "disclosure": disclosure,
    }


def ingest_batches(
    rewards: list[dict[str, Any]], batch: int, ingest: Keypair = INGEST
) -> list[dict[str, Any]]:
    """`rewards` with their readings attested again by `ingest` in batches of `batch` (as a busy ingest does:
    one signature a request), instead of one signature each."""
    out = []
    for start in range(0, len(rewards), batch):
        chunk = rewards[start : start + batch]
        envelopes = [r["disclosure"]["envelope"].encode() for r in chunk]
        headers = attestation.attest(ingest, READINGS.name, envelopes)
        for value, header in zip(chunk, headers, strict=True):
            out.append({**value, "disclosure": {**value["disclosure"], "attestation": json.loads(header)}})
    return out


def oracle_attestations(rewards: Sequence[dict[str, Any]], oracle: Keypair = ORACLE) -> list[dict[str, Any]]:
    """The rewards oracle's attestation of each of `rewards` (``city.rewards.v1`` values), as one batch."""
    covered = [attestation.encode(REWARDS.attested_part(r)) for r in rewards]
    return [json.loads(h) for h in attestation.attest(oracle, REWARDS.name, covered)]


def oracle_attested(reward: dict[str, Any], oracle: Keypair = ORACLE) -> dict[str, Any]:
    """The rewards oracle's attestation of one reward (a batch of one)."""
    return oracle_attestations([reward], oracle)[0]


def reward_records(rewards: Sequence[dict[str, Any]], oracle: Keypair = ORACLE) -> list[OutgoingRecord]:
    """``city.rewards.v1`` records of `rewards`, attested by `oracle` as the rewards worker does."""
    return attested(oracle, [reward_record(r) for r in rewards])


def decisions_record(key: str, values: Sequence[Any], oracle: Keypair = ORACLE) -> OutgoingRecord:
    """A ``city.reward-decisions.v1`` record of `values` (a value a line, as JCS), attested by `oracle` as the
    rewards worker attests its decisions."""
    lines = [attestation.encode(value) for value in values]
    return batch_record(oracle, REWARD_DECISIONS, key, None, lines, [])


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
    sender: Keypair, to: str, amount: int, nonce: int, currency: str = "CITY", *, memo: str | None = None
) -> dict[str, Any]:
    """A peer-to-peer transfer for the ledger (POST /v1/transfers), signed by its sender (`with_memo`)."""
    transfer = {"from": sender.did, "to": to, "amount": amount, "currency": currency, "nonce": nonce}
    return with_memo(sender, transfer, memo)


def with_memo(signer: Keypair, obj: Mapping[str, Any], memo: str | None) -> dict[str, Any]:
    """The POST body of a transfer or issuer command `obj` signed by `signer`, with `memo` as the ledger takes it
    (`services.common.memos`): the signed object commits to it (``memo_digest``), its disclosure goes beside it,
    unsigned (``memo_disclosure``). Without a memo, just the signed object."""
    if memo is None:
        return signer.sign(obj)
    commitment = memos.commit_memo(memo)
    signed = signer.sign({**obj, memos.DIGEST_FIELD: commitment.digest})
    return {**signed, memos.DISCLOSURE_FIELD: commitment.disclosure}


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
