"""rewards' evidence off the chain: the disclosures that open each reward's commitment

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "disclosures",
        sa.Column("tx_id", sa.String(64), primary_key=True),
        sa.Column("wallet", sa.String(64), nullable=False, index=True),
        sa.Column("disclosure", sa.LargeBinary, nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("disclosures")
