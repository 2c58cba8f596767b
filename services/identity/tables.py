"""The identity service's tables."""

from sqlalchemy import Column, DateTime, MetaData, String, Table, func

metadata = MetaData()

identities = Table(
    "identities",
    metadata,
    Column("did", String(64), primary_key=True),
    Column("registered_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
