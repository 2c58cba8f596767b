"""The directory service's tables."""

from sqlalchemy import (
    ARRAY,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    MetaData,
    String,
    Table,
    Text,
    false,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import INT4MULTIRANGE, JSONB, TSVECTOR

metadata = MetaData()

merchants = Table(
    "merchants",
    metadata,
    Column("wallet", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    # The category and local ownership the city verified, else those the owner claims.
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
    Column("description", Text, nullable=True),
    Column("chain", String(200), nullable=True),
    Column("hours", JSONB, nullable=True),
    # The hours as minutes since Monday 00:00 in the city's time zone (services.directory.hours).
    Column("open_minutes", INT4MULTIRANGE, nullable=True),
    Column("active", Boolean, nullable=False, server_default=true()),
    # The city's signed verification (services.directory.merchants.MerchantVerification), while it holds.
    Column("verification", JSONB, nullable=True),
    Index("ix_merchants_category_name", "category", "name"),
    Index("ix_merchants_name", "name"),
    Index("ix_merchants_chain", text("lower(chain)"), postgresql_where=text("chain IS NOT NULL")),
)

# What search reads: a narrow copy of each merchant's searchable facts, kept by a trigger on `merchants` in
# the same transaction (migration 0002). Searches rank thousands of rows; narrow rows (about 300 bytes against
# 1.6 kB with the signed documents) keep that within a few cache pages.
merchant_search = Table(
    "merchant_search",
    metadata,
    Column("wallet", String(64), ForeignKey("merchants.wallet", ondelete="CASCADE"), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("category", String(64), nullable=False),
    Column("locally_owned", Boolean, nullable=False),
    Column("verified", Boolean, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("accepts", ARRAY(String(16)), nullable=False),
    Column("lat", Float, nullable=True),
    Column("lon", Float, nullable=True),
    Column("open_minutes", INT4MULTIRANGE, nullable=True),
    Column("document", TSVECTOR, nullable=False),
    Index("ix_merchant_search_document", "document", postgresql_using="gin"),
    Index(
        "ix_merchant_search_name_trgm",
        "name",
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
    ),
    Index("ix_merchant_search_location", text("point(lon, lat)"), postgresql_using="gist"),
    Index("ix_merchant_search_category", "category"),
)
