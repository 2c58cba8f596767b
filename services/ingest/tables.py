"""The ingest service's tables."""

from sqlalchemy import Column, DateTime, MetaData, String, Table, func
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
)
