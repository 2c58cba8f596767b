"""the per-device rate limit's token bucket, in the device's sequence row, shared by every ingest instance

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Null: never counted, a full bucket; so every existing device starts with its burst, as after a restart
    # of the in-memory limiter these columns replace.
    op.add_column("device_sequences", sa.Column("tokens", sa.Double(), nullable=True))
    op.add_column("device_sequences", sa.Column("tokens_at", sa.Double(), nullable=True))


def downgrade() -> None:
    op.drop_column("device_sequences", "tokens_at")
    op.drop_column("device_sequences", "tokens")
