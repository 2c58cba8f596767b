"""The ingest service's tables."""

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, MetaData, String, Table, func
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

# Per device, the highest sequence number published. Kept apart from `devices` (whose rows are cached) and
# row-locked by each batch from its check until the broker acknowledged it (see services/ingest/sequences.py).
device_sequences = Table(
    "device_sequences",
    metadata,
    Column("device_id", String(64), ForeignKey("devices.device_id"), primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
)
