"""wrong PINs are counted per did, wallet or not, and each lockout lasts twice the one before

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
        "pin_guards",
        sa.Column("did", sa.String(64), primary_key=True),
        sa.Column("failed_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lockouts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.execute(
        """INSERT INTO pin_guards (did, failed_attempts, lockouts, locked_until)
           SELECT did, failed_attempts, CASE WHEN locked_until IS NULL THEN 0 ELSE 1 END, locked_until
           FROM custodial_wallets WHERE failed_attempts > 0 OR locked_until IS NOT NULL"""
    )
    op.drop_column("custodial_wallets", "failed_attempts")
    op.drop_column("custodial_wallets", "locked_until")


def downgrade() -> None:
    op.add_column(
        "custodial_wallets", sa.Column("failed_attempts", sa.Integer, nullable=False, server_default="0")
    )
    op.add_column("custodial_wallets", sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        """UPDATE custodial_wallets w SET failed_attempts = g.failed_attempts, locked_until = g.locked_until
           FROM pin_guards g WHERE g.did = w.did"""
    )
    op.drop_table("pin_guards")
