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

from services.common import merkle, signing
from services.common.ids import reading_id, reward_id
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

    @cached_property
    def record(self) -> dict[str, Any]:
        """The transaction record (the JSON object whose JCS bytes are the leaf)."""
        return json.loads(self.leaf)


def build_transaction(
    tx_type: str, tx_id: str, postings: Sequence[Posting], timestamp: str, **body: Any
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
    return Transaction(tx_id, tx_type, tuple(postings), leaf, merkle.leaf_hash(leaf))


def genesis_transaction(supply: int, timestamp: str) -> Transaction:
    """The first transaction of the chain: the treasury issues `supply` micro-CITY into the rewards pool."""
    postings = [Posting(TREASURY, CITY, -supply), Posting(REWARDS_POOL, CITY, supply)]
    return build_transaction(GENESIS, GENESIS_TX_ID, postings, timestamp)


def verify_reward(reward: Mapping[str, Any]) -> None:
    """Check that a (schema-valid) reward carries verifiable authorisation; raise `RejectedError` if not.

    The reading must be signed by its device and the registration by its owner; the registration must
    bind that device to the rewarded wallet; and the reading and reward ids must be the ones derived from
    the reading, so that one reading under one rule has exactly one reward id (and pays at most once).
    """
    try:
        wallet = reward["wallet"]
        reading = reward["evidence"]["reading"]
        registration = reward["evidence"]["registration"]
        device_id = reading["device_id"]
        seq = reading["seq"]
    except (KeyError, TypeError) as exc:
        raise RejectedError("malformed", f"missing field {exc}") from exc
    try:
        check_account(wallet)
        if not is_wallet(wallet):
            raise AccountError(f"{wallet!r} is a system account")
    except AccountError as exc:
        raise RejectedError("bad-wallet", f"{wallet!r} is not an Ed25519 did:key") from exc
    try:
        signing.verify(reading, "device_id")
    except signing.SignatureError as exc:
        raise RejectedError("bad-reading-signature", f"reading not signed by its device: {exc}") from exc
    try:
        # A device's registration travels with each of its rewards: verified once, then recognised.
        signing.verify(registration, "owner", remember=True)
    except signing.SignatureError as exc:
        raise RejectedError(
            "bad-registration-signature", f"registration not signed by its owner: {exc}"
        ) from exc
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


def reward_transaction(reward: Mapping[str, Any], timestamp: str) -> Transaction:
    """The transaction paying `reward` out of the rewards pool, with the reward (and evidence) in its record.

    Raises `RejectedError` if the reward's authorisation does not verify (see `verify_reward`).
    """
    verify_reward(reward)
    amount = reward["amount"]
    postings = [Posting(REWARDS_POOL, CITY, -amount), Posting(reward["wallet"], CITY, amount)]
    return build_transaction(
        REWARD, derive_tx_id(REWARD, reward["reward_id"]), postings, timestamp, reward=dict(reward)
    )


def same_content(record: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """True if two records settle the same thing identically (they may differ only in their timestamp).

    A redelivered reward gives the same content; a different reward under an already settled id does not.
    """
    return {k: v for k, v in record.items() if k != "timestamp"} == {
        k: v for k, v in other.items() if k != "timestamp"
    }
