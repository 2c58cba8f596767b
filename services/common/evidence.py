"""A reward's evidence, private on a public chain: a salted commitment, and the pseudonyms the public may see.

A reward on the chain names what anyone may check without learning about a person: its rule, amount and
policy, the wallet paid, and pseudonyms of the device and person its caps count against. The evidence it rests
on (the readings envelope ingest attested: the reading's values, zone and place, the device registration) is
personal, so the chain holds only a commitment to it, as SD-JWT holds a salted digest per disclosure:

    evidence = sha256(DOMAIN || salt || envelope)

where ``envelope`` is the exact ``city.readings.v1`` value ingest attested (its bytes: ingest's attestation
covers them as they are, so nothing is canonicalised again) and ``salt`` 16 bytes the rewards oracle derives
from its key and the reward id (`salt_for`): unguessable, so a commitment cannot be tested against guessed
values, and the same for a redelivered reward, so it is byte for byte the same reward. The disclosure (salt,
envelope, ingest's attestation) travels beside the reward to the ledger, which checks it, stores it off the
chain, and serves it only to the parties and to auditors; erasing it leaves the commitment, and the chain
still verifies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from services.common import events, receipts, signing

DOMAIN = b"smartcity/evidence\x00"
SALT_BYTES = 16


class EvidenceError(ValueError):
    """A disclosure that does not open its commitment, or does not say what the public reward says."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code, self.detail = code, detail

    def __reduce__(self) -> tuple[type[EvidenceError], tuple[str, str]]:
        return type(self), (self.code, self.detail)


def commitment(salt: bytes, envelope: bytes) -> str:
    """The hex commitment to an envelope's bytes under `salt`."""
    return hashlib.sha256(DOMAIN + salt + envelope).hexdigest()


def salt_for(key_seed: bytes, reward_id: str) -> bytes:
    """The salt of a reward's commitment: a keyed BLAKE2b of its id under the oracle's key (secret to it,
    deterministic for a redelivery). The standard library's BLAKE2b gives libsodium's bytes (the key, person
    and size are the same parameters) at an eighth of PyNaCl's cost through its bindings (0.6 vs 4.8 µs, once
    a reward)."""
    return hashlib.blake2b(
        reward_id.encode(), key=key_seed, person=b"evidence-salt", digest_size=SALT_BYTES
    ).digest()


def device_pseudonym(device_id: str) -> str:
    """What the chain calls a device: its caps count by it, and it does not name the device's key."""
    return signing.sha256_hex(f"smartcity/device/{device_id}".encode())


def public_facts(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """What a reward on the chain says of its (attested) readings envelope: the pseudonyms and facts the
    public checks caps and policy by. A reward whose public part differs from these for its disclosed
    envelope is refused (`check_disclosure`)."""
    reading = envelope["reading"]
    facts: dict[str, Any] = {
        "reading_id": envelope["reading_id"],
        "wallet": envelope["owner"],
        "earned_at": reading["ts"],
        "kind": reading["kind"],
        "device": device_pseudonym(reading["device_id"]),
    }
    if (person := envelope.get("person")) is not None:
        facts["person"] = person
    if (attester := receipts.attester_class(reading)) is not None:
        facts["attested_by"] = attester
    return facts


def open_disclosure(reward: Mapping[str, Any], disclosure: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The envelope bytes and the envelope a disclosure opens, once its salt and envelope hash to the
    reward's commitment; raises `EvidenceError`. (The caller checks ingest's attestation of the bytes.)"""
    try:
        salt = signing.b64url_decode(disclosure["salt"])
        envelope_bytes = disclosure["envelope"].encode()
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EvidenceError("bad-disclosure", f"salt and envelope: {exc}") from exc
    if len(salt) != SALT_BYTES or signing.b64url_encode(salt) != disclosure["salt"]:
        raise EvidenceError("bad-disclosure", f"the salt is not {SALT_BYTES} bytes in canonical base64url")
    if commitment(salt, envelope_bytes) != reward.get("evidence"):
        raise EvidenceError(
            "evidence-mismatch", "the disclosed envelope does not open the reward's commitment"
        )
    try:
        envelope = events.decode_json(envelope_bytes)
        facts = public_facts(envelope)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EvidenceError("bad-disclosure", f"the envelope is not a readings envelope: {exc}") from exc
    for name, value in facts.items():
        if reward.get(name) != value:
            raise EvidenceError(
                f"{name.replace('_', '-')}-mismatch", f"the reward's {name} is not its evidence's"
            )
    for name in ("person", "attested_by"):
        if name in reward and name not in facts:
            raise EvidenceError(f"{name.replace('_', '-')}-mismatch", f"the evidence names no {name}")
    return envelope_bytes, envelope
