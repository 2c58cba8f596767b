"""search: description, chain, opening hours, activity and the city's verification of merchants; a narrow
search table kept by a trigger, with full-text, trigram, location and category indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The full-text document of a merchant, by weight: the name (A) counts most, then the chain and category (B),
# the description (C) and the address (D). 'simple' (no stemming, no stop words): names are in many languages.
SYNC_FUNCTION = """
CREATE FUNCTION merchant_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO merchant_search AS s
        (wallet, name, category, locally_owned, verified, active, accepts, lat, lon, open_minutes, document)
    VALUES (
        NEW.wallet, NEW.name, NEW.category, NEW.locally_owned, NEW.verified, NEW.active, NEW.accepts,
        NEW.lat, NEW.lon, NEW.open_minutes,
        setweight(to_tsvector('simple', NEW.name), 'A')
        || setweight(to_tsvector('simple', coalesce(NEW.chain, '') || ' ' || NEW.category), 'B')
        || setweight(to_tsvector('simple', coalesce(NEW.description, '')), 'C')
        || setweight(to_tsvector('simple', coalesce(NEW.address, '')), 'D')
    )
    ON CONFLICT (wallet) DO UPDATE SET
        name = EXCLUDED.name, category = EXCLUDED.category, locally_owned = EXCLUDED.locally_owned,
        verified = EXCLUDED.verified, active = EXCLUDED.active, accepts = EXCLUDED.accepts,
        lat = EXCLUDED.lat, lon = EXCLUDED.lon, open_minutes = EXCLUDED.open_minutes,
        document = EXCLUDED.document;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.add_column("merchants", sa.Column("description", sa.Text(), nullable=True))
    op.add_column("merchants", sa.Column("chain", sa.String(200), nullable=True))
    op.add_column("merchants", sa.Column("hours", postgresql.JSONB(), nullable=True))
    op.add_column("merchants", sa.Column("open_minutes", postgresql.INT4MULTIRANGE(), nullable=True))
    op.add_column("merchants", sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.add_column("merchants", sa.Column("verification", postgresql.JSONB(), nullable=True))
    op.create_index(
        "ix_merchants_chain",
        "merchants",
        [sa.text("lower(chain)")],
        postgresql_where=sa.text("chain IS NOT NULL"),
    )
    op.create_table(
        "merchant_search",
        sa.Column(
            "wallet", sa.String(64), sa.ForeignKey("merchants.wallet", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("locally_owned", sa.Boolean(), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("accepts", postgresql.ARRAY(sa.String(16)), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("open_minutes", postgresql.INT4MULTIRANGE(), nullable=True),
        sa.Column("document", postgresql.TSVECTOR(), nullable=False),
    )
    op.create_index("ix_merchant_search_document", "merchant_search", ["document"], postgresql_using="gin")
    op.create_index(
        "ix_merchant_search_name_trgm",
        "merchant_search",
        ["name"],
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
    )
    op.create_index(
        "ix_merchant_search_location",
        "merchant_search",
        [sa.text("point(lon, lat)")],
        postgresql_using="gist",
    )
    op.create_index("ix_merchant_search_category", "merchant_search", ["category"])
    op.execute(SYNC_FUNCTION)
    op.execute(
        "CREATE TRIGGER merchant_search_sync AFTER INSERT OR UPDATE ON merchants "
        "FOR EACH ROW EXECUTE FUNCTION merchant_search_sync()"
    )
    op.execute("UPDATE merchants SET active = active")  # fills the search table for merchants already held


def downgrade() -> None:
    op.execute("DROP TRIGGER merchant_search_sync ON merchants")
    op.execute("DROP FUNCTION merchant_search_sync()")
    op.drop_table("merchant_search")
    op.drop_index("ix_merchants_chain", table_name="merchants")
    for column in ("verification", "active", "open_minutes", "hours", "chain", "description"):
        op.drop_column("merchants", column)
