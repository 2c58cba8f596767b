"""an erasure names the person's AID holder key too, whose memos go with their wallet's

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("erasures", sa.Column("aid_holder", sa.String(64), nullable=True))
    op.create_index("ix_erasures_aid_holder", "erasures", ["aid_holder"])


def downgrade() -> None:
    op.drop_index("ix_erasures_aid_holder", table_name="erasures")
    op.drop_column("erasures", "aid_holder")
