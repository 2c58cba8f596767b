"""custodial wallets, credentials, consents, notices, service records

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("identities", sa.Column("custody", sa.String(16), nullable=False, server_default="self"))
    op.add_column("identities", sa.Column("registration", JSONB, nullable=True))
    op.create_table(
        "custodial_wallets",
        sa.Column("did", sa.String(64), sa.ForeignKey("identities.did"), primary_key=True),
        sa.Column("sealed_seed", sa.LargeBinary, nullable=False),
        sa.Column("salt", sa.LargeBinary, nullable=False),
        sa.Column("failed_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enrolled_by", sa.String(64), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "credentials",
        sa.Column("credential_id", sa.String(32), primary_key=True),
        sa.Column("subject", sa.String(64), sa.ForeignKey("identities.did"), nullable=False, index=True),
        sa.Column(
            "status_index", sa.BigInteger, sa.Identity(start=0, minvalue=0), nullable=False, unique=True
        ),
        sa.Column("vct", sa.String(200), nullable=False),
        sa.Column("issued_by", sa.String(64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sd_jwt", sa.Text, nullable=True),
    )
    op.create_table(
        "consents",
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("grantee", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consent", JSONB, nullable=False),
        sa.Column("receipt", JSONB, nullable=False),
        sa.PrimaryKeyConstraint("subject", "category", "grantee"),
    )
    op.create_table(
        "notices",
        sa.Column("notice_id", sa.String(32), primary_key=True),
        sa.Column("recipient", sa.String(64), nullable=False, index=True),
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("notice", JSONB, nullable=False),
    )
    op.create_table(
        "service_records",
        sa.Column("record_id", sa.String(32), primary_key=True),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    for table in ("service_records", "notices", "consents", "credentials", "custodial_wallets"):
        op.drop_table(table)
    op.drop_column("identities", "registration")
    op.drop_column("identities", "custody")
