"""the zone a person stays in, for notices to the AID holders of a zone

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("identities", sa.Column("zone", sa.String(64), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM notices WHERE group_kind = 'aid_zone'")
    op.drop_column("identities", "zone")
