"""Transaction records, the leaves of the chain (pure).

A transaction record is a JSON object ``{tx_id, type, postings, timestamp, ...}`` plus what authorises it
(a reward carries the public reward, committing to its evidence, and its oracle's attestation). Its leaf bytes are the record's RFC 8785 (JCS)
bytes and its leaf hash ``SHA-256(0x00 || bytes)`` (RFC 9162). Transaction ids are derived from what the
transaction settles, so a redelivered reward maps to the same id and can never pay twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from typing import TYPE_CHECKING, Any

from services.common import jcs, merkle, signing
from services.ledger.accounts import (
    CITY,
    REWARDS_POOL,
    TREASURY,
    Posting,
    PostingError,
    check_postings,
)

if TYPE_CHECKING:
    from services.ledger.policies import RewardClaim
    from services.ledger.rewards import Disclosure

COMPACT_FIELDS = 8
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
    claim: RewardClaim | None = None
    """What a reward claims under its policy, which the store checks against the settled caps."""
    disclosure: Disclosure | None = None
    """A reward's evidence, which the store keeps off the chain (`services.ledger.rewards`)."""

    def compact(self) -> tuple[Any, ...]:
        """The transaction as plain values (`COMPACT_FIELDS` of them), cheap to pickle across processes."""
        postings = tuple((p.account, p.currency, p.amount) for p in self.postings)
        claim = None if self.claim is None else tuple(getattr(self.claim, f.name) for f in fields(self.claim))
        disclosure = None if self.disclosure is None else (self.disclosure.wallet, self.disclosure.json)
        return (self.tx_id, self.type, postings, self.leaf, self.leaf_hash, self.requires, claim, disclosure)

    @classmethod
    def from_compact(cls, values: tuple[Any, ...]) -> Transaction:
        """The transaction of `compact`'s values."""
        from services.ledger.policies import RewardClaim  # the claim's module imports this one
        from services.ledger.rewards import Disclosure

        tx_id, tx_type, postings, leaf, leaf_hash, requires, claim, disclosure = values
        return cls(
            tx_id,
            tx_type,
            tuple(Posting(*p) for p in postings),
            leaf,
            leaf_hash,
            requires,
            None if claim is None else RewardClaim(*claim),
            None if disclosure is None else Disclosure(*disclosure),
        )

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
    claim: RewardClaim | None = None,
    encoded: Mapping[str, bytes] | None = None,
    disclosure: Disclosure | None = None,
    **body: Any,
) -> Transaction:
    """Check the postings balance and build the record ``{tx_id, type, postings, **body, timestamp}``; a
    reward's `disclosure` is kept beside it, off the record.

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
        leaf = signing.canonical_bytes(record) if not encoded else jcs.object_bytes(record, encoded)
    except (signing.SignatureError, jcs.CanonicalizationError) as exc:
        raise RejectedError("not-canonical", str(exc)) from exc
    return Transaction(
        tx_id, tx_type, tuple(postings), leaf, merkle.leaf_hash(leaf), tuple(requires), claim, disclosure
    )


def genesis_transaction(supply: int, timestamp: str) -> Transaction:
    """The first transaction of the chain: the treasury issues `supply` micro-CITY into the rewards pool."""
    postings = [Posting(TREASURY, CITY, -supply), Posting(REWARDS_POOL, CITY, supply)]
    return build_transaction(GENESIS, GENESIS_TX_ID, postings, timestamp)


def same_content(record: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """True if two records settle the same thing identically: they may differ only in their timestamp and
    in the batch attestations vouching for them.

    A redelivered reward gives the same content, even when it was attested again in another batch (a
    restarted rewards worker, a reading ingest published twice); a different reward under an already
    settled id does not.
    """
    return _content(record) == _content(other)


def _content(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("timestamp", "attestation")}
