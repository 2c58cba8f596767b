"""Transaction records, the leaves of the chain (pure).

A transaction record is a JSON object ``{tx_id, type, postings, timestamp, ...}`` plus what authorises it
(a reward carries the reward with its signed evidence). Its leaf bytes are the record's RFC 8785 (JCS)
bytes and its leaf hash ``SHA-256(0x00 || bytes)`` (RFC 9162). Transaction ids are derived from what the
transaction settles, so a redelivered reward maps to the same id and can never pay twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from services.common import attestation, merkle, signing
from services.common.ids import reading_id, reward_id
from services.common.roles import Role
from services.common.topics import READINGS, REWARDS
from services.ledger.accounts import (
    CITY,
    REWARDS_POOL,
    TREASURY,
    AccountError,
    Posting,
    PostingError,
    check_account,
    check_postings,
    is_wallet,
)

GENESIS = "genesis"
REWARD = "reward"
TX_ID_DOMAIN = "smartcity/ledger"


class RejectedError(ValueError):
    """A transaction that must not settle; `code` is a short stable label, `detail` says why."""

    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}")


def derive_tx_id(tx_type: str, source_id: str) -> str:
    """The transaction id of the `tx_type` transaction settling `source_id` (sha256 hex).

    The type is part of the preimage so ids of different kinds of transactions never collide.
    """
    return signing.sha256_hex(f"{TX_ID_DOMAIN}/{tx_type}/{source_id}".encode())


GENESIS_TX_ID = derive_tx_id(GENESIS, "city")


@dataclass(frozen=True)
class Transaction:
    """A transaction ready to settle: its postings, the record's leaf bytes (JCS) and leaf hash.

    The record itself is parsed back from the leaf when asked for, so a transaction built in a worker
    process crosses back to the ledger as little more than its bytes.
    """

    tx_id: str
    type: str
    postings: tuple[Posting, ...]
    leaf: bytes
    leaf_hash: bytes
    requires: tuple[tuple[str, str], ...] = ()
    """(key, role) pairs its authorisation rests on: the store settles it only if each key holds its role
    on the chain at that moment (the signatures were checked before, possibly in another process)."""

    @cached_property
    def record(self) -> dict[str, Any]:
        """The transaction record (the JSON object whose JCS bytes are the leaf)."""
        return json.loads(self.leaf)


def build_transaction(
    tx_type: str,
    tx_id: str,
    postings: Sequence[Posting],
    timestamp: str,
    requires: Sequence[tuple[str, str]] = (),
    **body: Any,
) -> Transaction:
    """Check the postings balance and build the record ``{tx_id, type, postings, **body, timestamp}``.

    No postings at all record a decision that moves no money (an account frozen, say). Raises
    `RejectedError` if the postings do not form a transaction or the record cannot be canonicalized.
    """
    try:
        if postings:
            check_postings(postings)
    except PostingError as exc:
        raise RejectedError("bad-postings", str(exc)) from exc
    record = {
        "tx_id": tx_id,
        "type": tx_type,
        "postings": [p.to_json() for p in postings],
        **body,
        "timestamp": timestamp,
    }
    try:
        leaf = signing.canonical_bytes(record)
    except signing.SignatureError as exc:
        raise RejectedError("not-canonical", str(exc)) from exc
    return Transaction(tx_id, tx_type, tuple(postings), leaf, merkle.leaf_hash(leaf), tuple(requires))


def genesis_transaction(supply: int, timestamp: str) -> Transaction:
    """The first transaction of the chain: the treasury issues `supply` micro-CITY into the rewards pool."""
    postings = [Posting(TREASURY, CITY, -supply), Posting(REWARDS_POOL, CITY, supply)]
    return build_transaction(GENESIS, GENESIS_TX_ID, postings, timestamp)


def reading_envelope(reward: Mapping[str, Any]) -> dict[str, Any]:
    """The ``city.readings.v1`` value a reward's evidence came from, rebuilt from the reward: what ingest's
    attestation (``evidence.attestation``) covers."""
    evidence = reward["evidence"]
    return {
        "reading_id": reward["reading_id"],
        "owner": reward["wallet"],
        "received_at": evidence["received_at"],
        "reading": evidence["reading"],
        "registration": evidence["registration"],
    }


def verify_reward(reward: Mapping[str, Any], oracle_attestation: Mapping[str, Any]) -> tuple[str, str]:
    """Check that a (schema-valid) reward carries verifiable authorisation; return the keys it rests on,
    (rewards oracle, ingest attestor), whose roles the caller checks; raise `RejectedError` if not.

    - the reward itself is attested by its oracle (`oracle_attestation`, on ``city.rewards.v1``);
    - the readings envelope it names (`reading_envelope`) is attested by ingest, which checked the device's
      signature, its registration to the wallet, the owner's consent and the sequence number;
    - the registration binds the reading's device to the rewarded wallet, and the reading and reward ids
      are the ones derived from the reading, so one reading under one rule has exactly one reward id.

    The device's and the owner's own signatures are not checked again: ingest's attestation covers the
    bytes that carry them, and they stay on the chain for an auditor (``smartcity verify --deep``).
    """
    try:
        wallet = reward["wallet"]
        reading = reward["evidence"]["reading"]
        registration = reward["evidence"]["registration"]
        device_id = reading["device_id"]
        seq = reading["seq"]
        envelope = reading_envelope(reward)
    except (KeyError, TypeError) as exc:
        raise RejectedError("malformed", f"missing field {exc}") from exc
    try:
        check_account(wallet)
        if not is_wallet(wallet):
            raise AccountError(f"{wallet!r} is a system account")
    except AccountError as exc:
        raise RejectedError("bad-wallet", f"{wallet!r} is not an Ed25519 did:key") from exc
    try:
        oracle = attestation.verify(oracle_attestation, REWARDS.name, attestation.encode(reward)).signer
    except attestation.AttestationError as exc:
        raise RejectedError(f"reward-{exc.code}", exc.detail) from exc
    except signing.SignatureError as exc:
        raise RejectedError("not-canonical", str(exc)) from exc
    try:
        ingest = attestation.verify(
            reward["evidence"]["attestation"], READINGS.name, attestation.encode(envelope)
        ).signer
    except attestation.AttestationError as exc:
        raise RejectedError(f"reading-{exc.code}", exc.detail) from exc
    if registration.get("owner") != wallet:
        raise RejectedError("wallet-mismatch", "the registration's owner is not the rewarded wallet")
    if registration.get("device_id") != device_id:
        raise RejectedError("device-mismatch", "the registration is for another device than the reading's")
    if reward.get("reading_id") != reading_id(device_id, seq):
        raise RejectedError(
            "reading-id-mismatch", "reading_id is not sha256('<device_id>/<seq>') of the reading"
        )
    if reward.get("reward_id") != reward_id(reward["reading_id"], reward.get("rule", "")):
        raise RejectedError("reward-id-mismatch", "reward_id is not sha256('<reading_id>/<rule>')")
    if reward.get("currency") != CITY:
        raise RejectedError("bad-currency", f"rewards are paid in {CITY}")
    amount = reward.get("amount")
    if type(amount) is not int or amount <= 0:
        raise RejectedError("bad-amount", f"amount must be a positive integer of micro-units, got {amount!r}")
    return oracle, ingest


def reward_transaction(
    reward: Mapping[str, Any], oracle_attestation: Mapping[str, Any], timestamp: str
) -> Transaction:
    """The transaction paying `reward` out of the rewards pool; its record holds the reward (with its
    evidence) and the oracle's attestation, so anyone can check both again.

    Raises `RejectedError` if the reward's authorisation does not verify (see `verify_reward`); the store
    checks the roles of the keys it rests on when it settles.
    """
    oracle, ingest = verify_reward(reward, oracle_attestation)
    amount = reward["amount"]
    postings = [Posting(REWARDS_POOL, CITY, -amount), Posting(reward["wallet"], CITY, amount)]
    return build_transaction(
        REWARD,
        derive_tx_id(REWARD, reward["reward_id"]),
        postings,
        timestamp,
        requires=((oracle, Role.REWARDS_ORACLE), (ingest, Role.INGEST_ATTESTOR)),
        reward=dict(reward),
        attestation=dict(oracle_attestation),
    )


def same_content(record: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """True if two records settle the same thing identically: they may differ only in their timestamp and
    in the batch attestations vouching for them.

    A redelivered reward gives the same content, even when it was attested again in another batch (a
    restarted rewards worker, a reading ingest published twice); a different reward under an already
    settled id does not.
    """
    return _content(record) == _content(other)


def _content(record: Mapping[str, Any]) -> dict[str, Any]:
    content = {k: v for k, v in record.items() if k not in ("timestamp", "attestation")}
    reward = content.get("reward")
    if isinstance(reward, Mapping) and isinstance(reward.get("evidence"), Mapping):
        evidence = {k: v for k, v in reward["evidence"].items() if k != "attestation"}
        content["reward"] = {**reward, "evidence": evidence}
    return content
