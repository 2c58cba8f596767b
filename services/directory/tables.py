"""The directory service's tables."""

from sqlalchemy import (
    ARRAY,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    MetaData,
    String,
    Table,
    Text,
    false,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

merchants = Table(
    "merchants",
    metadata,
    Column("wallet", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("category", String(64), nullable=False),
    Column("locally_owned", Boolean, nullable=False),
    Column("accepts", ARRAY(String(16)), nullable=False),
    Column("address", Text, nullable=True),
    Column("lat", Float, nullable=True),
    Column("lon", Float, nullable=True),
    Column("verified", Boolean, nullable=False, server_default=false()),
    # The exact object the wallet signed, so anyone can re-verify who registered these facts.
    Column("registration", JSONB, nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_merchants_category_name", "category", "name"),
    Index("ix_merchants_name", "name"),
)
