"""ledger: nonces, frozen accounts, AID grants and the merchants fold

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "nonces",
        sa.Column("account", sa.String(128), primary_key=True),
        sa.Column("nonce", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "frozen",
        sa.Column("account", sa.String(128), primary_key=True),
        sa.Column("tx_id", sa.String(64), nullable=False),
    )
    op.create_table(
        "grants",
        sa.Column("grant_id", sa.String(64), primary_key=True),
        sa.Column("wallet", sa.String(128), nullable=False, index=True),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("remaining", sa.BigInteger, nullable=False),
        sa.Column("categories", sa.ARRAY(sa.String(64)), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed", sa.String(16), nullable=True),
        sa.CheckConstraint("remaining >= 0 AND remaining <= amount", name="ck_grants_remaining"),
    )
    op.create_index(
        "ix_grants_open_expiry", "grants", ["expires_at"], postgresql_where=sa.text("closed IS NULL")
    )
    op.create_table(
        "merchants",
        sa.Column("wallet", sa.String(128), primary_key=True),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("locally_owned", sa.Boolean, nullable=False),
        sa.Column("verified", sa.Boolean, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("accepts", sa.ARRAY(sa.String(16)), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("merchants", "grants", "frozen", "nonces"):
        op.drop_table(table)
