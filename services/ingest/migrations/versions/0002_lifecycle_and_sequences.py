"""device lifecycle (rotation, revocation) and per-device sequence numbers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("devices", sa.Column("replaces", sa.String(64), nullable=True))
    op.add_column("devices", sa.Column("replaced_by", sa.String(64), nullable=True))
    op.add_column("devices", sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("devices", sa.Column("revocation", postgresql.JSONB(), nullable=True))
    op.create_table(
        "device_sequences",
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.device_id"), primary_key=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
    )
    # Devices registered before sequences were tracked start with nothing published (seq >= 0).
    op.execute("INSERT INTO device_sequences (device_id, last_seq) SELECT device_id, -1 FROM devices")


def downgrade() -> None:
    op.drop_table("device_sequences")
    for column in ("revocation", "revoked_at", "replaced_by", "replaces"):
        op.drop_column("devices", column)
