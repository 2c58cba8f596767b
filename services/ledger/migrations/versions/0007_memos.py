"""memos off the chain: the disclosures opening transfers' and issuer commands' memo digests

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "memos",
        sa.Column("tx_id", sa.String(64), primary_key=True),
        sa.Column("parties", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("disclosure", sa.Text(), nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("memos_parties", "memos", ["parties"], postgresql_using="gin")
    op.add_column("erasures", sa.Column("memos", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("erasures", "memos")
    op.drop_index("memos_parties", table_name="memos")
    op.drop_table("memos")
