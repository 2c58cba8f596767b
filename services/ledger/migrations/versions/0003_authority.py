"""ledger: the root key and the roles in force (the fold of the chain's authority records)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "authority",
        sa.Column("id", sa.SmallInteger, primary_key=True),
        sa.Column("root", sa.String(128), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_authority_single_row"),
    )
    op.create_table(
        "roles",
        sa.Column("role", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("roles")
    op.drop_table("authority")
