"""The ingest service's tables."""

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

devices = Table(
    "devices",
    metadata,
    Column("device_id", String(64), primary_key=True),
    Column("owner", String(64), nullable=False, index=True),
    Column("kind", String(64), nullable=False),
    Column("zone", String(64), nullable=False),
    # The exact object the owner signed, so the binding can be re-verified and travels with each reading.
    Column("registration", JSONB, nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Key rotation links the old key's device and the new one both ways, so the history stays traceable.
    Column("replaces", String(64), nullable=True),
    Column("replaced_by", String(64), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    # The signed revocation (by the owner or a city operator), or null for a rotation's implicit one.
    Column("revocation", JSONB, nullable=True),
)

# Per device, the highest sequence number published and the rate limit's token bucket. Kept apart from
# `devices` (whose rows are cached) and row-locked by each batch from its check until the broker acknowledged
# it (see services/ingest/sequences.py), so every ingest instance counts a device's readings in one bucket.
device_sequences = Table(
    "device_sequences",
    metadata,
    Column("device_id", String(64), ForeignKey("devices.device_id"), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
    # The bucket's tokens as counted at tokens_at (epoch seconds of an ingest instance's clock: see
    # services/ingest/ratelimit.py); both null until the device's first reading is published: a full bucket.
    Column("tokens", Double, nullable=True),
    Column("tokens_at", Double, nullable=True),
)

# What the rewards worker decided for each reading (city.reward-decisions.v1), kept for the person whose wallet
# it names (`GET /v1/wallets/{wallet}/decisions`, a signed read). One row per reading: a redelivered decision
# is the same row. Only what tells a person what a reading earned and why not more: not its values or zone.
reward_decisions = Table(
    "reward_decisions",
    metadata,
    Column("reading_id", String(64), primary_key=True),
    Column("wallet", String(64), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("rewards", JSONB, nullable=False),  # [{"reward_id", "rule", "amount"}]
    Column("reasons", JSONB, nullable=False),  # [{"code", "detail", "rule"?}]
    Column("policy_version", String(64), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    # Newest first, page by page, per wallet.
    Index("ix_reward_decisions_wallet_ts", "wallet", "ts", "reading_id"),
)

# The erasure requests of people (`POST /v1/erasures`), by the id of the signed request: the same request
# again erases nothing more and gets the same answer. A wallet's decisions taken before its erasure are not
# stored again if the topic redelivers them.
erasures = Table(
    "erasures",
    metadata,
    Column("request_id", String(32), primary_key=True),
    Column("did", String(64), nullable=False, index=True),
    Column("request", JSONB, nullable=False),
    Column("devices", Integer, nullable=False),  # how many of the person's devices it erased
    Column("decisions", Integer, nullable=False),  # how many of their decisions it deleted
    Column("erased_at", DateTime(timezone=True), nullable=False),
)
