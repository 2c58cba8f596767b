"""ledger: transactions, postings, balances, the Merkle tree and blocks

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "transactions",
        sa.Column("seq", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("tx_id", sa.String(64), nullable=False, unique=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("record", sa.LargeBinary, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary, nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "postings",
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("account", sa.String(128), primary_key=True),
        sa.Column("currency", sa.String(16), primary_key=True),
        sa.Column("amount", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_postings_account_seq", "postings", ["account", "seq"])
    op.create_table(
        "balances",
        sa.Column("account", sa.String(128), primary_key=True),
        sa.Column("currency", sa.String(16), primary_key=True),
        sa.Column("balance", sa.BigInteger, nullable=False),
        sa.Column("issuer", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.CheckConstraint("issuer OR balance >= 0", name="ck_balances_non_negative"),
    )
    op.create_index("ix_balances_currency_balance", "balances", ["currency", "balance"])
    op.create_table("pending", sa.Column("seq", sa.BigInteger, primary_key=True))
    op.create_table(
        "leaves",
        sa.Column("leaf_index", sa.BigInteger, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False, unique=True),
        sa.Column("block_height", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "tree_nodes",
        sa.Column("level", sa.SmallInteger, primary_key=True),
        sa.Column("idx", sa.BigInteger, primary_key=True),
        sa.Column("hash", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "blocks",
        sa.Column("height", sa.BigInteger, primary_key=True),
        sa.Column("tree_size", sa.BigInteger, nullable=False, unique=True),
        sa.Column("header", sa.LargeBinary, nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_blocks_unpublished", "blocks", ["height"], postgresql_where=sa.text("published_at IS NULL")
    )


def downgrade() -> None:
    for table in ("blocks", "tree_nodes", "leaves", "pending", "balances", "postings", "transactions"):
        op.drop_table(table)
