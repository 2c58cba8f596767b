"""ledger: reward policies on the chain, the cap counters rewards are checked against, lz4 for records

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "policies",
        sa.Column("policy_hash", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("tx_id", sa.String(64), nullable=False),
    )
    op.create_table(
        "reward_caps",
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("period", sa.BigInteger, primary_key=True),
        sa.Column("paid", sa.BigInteger, nullable=False),
    )
    # A record with its attestations is a few KB of JSON: lz4 compresses it in a fraction of pglz's CPU
    # (where the server was built with it).
    if _has_lz4():
        op.execute("ALTER TABLE transactions ALTER COLUMN record SET COMPRESSION lz4")


def _has_lz4() -> bool:
    query = "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
    return bool(op.get_bind().execute(sa.text(query)).scalar())


def downgrade() -> None:
    if _has_lz4():
        op.execute("ALTER TABLE transactions ALTER COLUMN record SET COMPRESSION pglz")
    op.drop_table("reward_caps")
    op.drop_table("policies")
