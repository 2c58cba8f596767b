"""PIN resets: a recovery copy of each custodial seed, the photo on record, and the log of resets

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("custodial_wallets", sa.Column("recovery_sealed", sa.LargeBinary, nullable=True))
    op.add_column("custodial_wallets", sa.Column("photo_sha256", sa.String(64), nullable=True))
    op.create_table(
        "pin_resets",
        sa.Column("reset_id", sa.String(32), primary_key=True),
        sa.Column("did", sa.String(64), sa.ForeignKey("identities.did"), nullable=False, index=True),
        sa.Column("caseworker", sa.String(64), nullable=False),
        sa.Column("proof", sa.String(16), nullable=False),
        sa.Column("order", JSONB, nullable=False),
        sa.Column("reset_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("pin_resets")
    op.drop_column("custodial_wallets", "photo_sha256")
    op.drop_column("custodial_wallets", "recovery_sealed")
