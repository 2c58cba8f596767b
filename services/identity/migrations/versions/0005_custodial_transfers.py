"""the transfers identity signs for custodial wallets, by request id, with the ledger's receipt

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "custodial_transfers",
        sa.Column("did", sa.String(64), sa.ForeignKey("identities.did"), nullable=False),
        sa.Column("request_id", sa.String(100), nullable=False),
        sa.Column("nonce", sa.BigInteger, nullable=False),
        sa.Column("transfer", JSONB, nullable=False),
        sa.Column("receipt", JSONB, nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("did", "request_id"),
        sa.UniqueConstraint("did", "nonce"),
    )


def downgrade() -> None:
    op.drop_table("custodial_transfers")
