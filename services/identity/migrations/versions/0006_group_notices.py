"""notices to a group (all custodial wallets, holders of a credential type), stored once, and notices that expire

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("notices", "recipient", existing_type=sa.String(64), nullable=True)
    op.add_column("notices", sa.Column("group_kind", sa.String(16), nullable=True))
    op.add_column("notices", sa.Column("group_value", sa.String(200), nullable=True))
    op.add_column("notices", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(
        "notices_one_addressee",
        "notices",
        "(recipient IS NULL) <> (group_kind IS NULL) AND (group_kind IS NULL) = (group_value IS NULL)",
    )
    op.create_index("ix_notices_group", "notices", ["group_kind", "group_value"])


def downgrade() -> None:
    # Group notices have no one recipient a 0005 inbox could show them to.
    op.execute("DELETE FROM notices WHERE recipient IS NULL")
    op.drop_index("ix_notices_group", "notices")
    op.drop_constraint("notices_one_addressee", "notices", type_="check")
    op.drop_column("notices", "expires_at")
    op.drop_column("notices", "group_value")
    op.drop_column("notices", "group_kind")
    op.alter_column("notices", "recipient", existing_type=sa.String(64), nullable=False)
