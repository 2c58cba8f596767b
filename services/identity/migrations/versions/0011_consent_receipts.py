"""every signed consent receipt, and where it is anchored on the chain

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "consent_receipts",
        sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("receipt_id", sa.String(64), nullable=False, unique=True),
        sa.Column("subject", sa.String(64), nullable=False, index=True),
        sa.Column("receipt", JSONB, nullable=False),
        sa.Column("anchor_tx_id", sa.String(64), nullable=True),
        sa.Column("anchor", JSONB, nullable=True),
        sa.Column("leaf_index", sa.Integer, nullable=True),
        sa.Column("path", JSONB, nullable=True),
    )
    op.create_index(
        "ix_consent_receipts_unanchored",
        "consent_receipts",
        ["seq"],
        postgresql_where=sa.text("anchor_tx_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("consent_receipts")
