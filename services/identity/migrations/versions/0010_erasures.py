"""people's erasure requests and their completion; a service record's subject may be erased

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("service_records", "subject", existing_type=sa.String(64), nullable=True)
    op.create_table(
        "erasures",
        sa.Column("request_id", sa.String(32), primary_key=True),
        sa.Column("did", sa.String(64), nullable=False, index=True),
        sa.Column("request", postgresql.JSONB(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("identity_erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ingest_erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ledger_erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    op.create_index(
        "ix_erasures_pending", "erasures", ["requested_at"], postgresql_where=sa.text("completed_at IS NULL")
    )


def downgrade() -> None:
    op.drop_table("erasures")
    op.execute("DELETE FROM service_records WHERE subject IS NULL")
    op.alter_column("service_records", "subject", existing_type=sa.String(64), nullable=False)
