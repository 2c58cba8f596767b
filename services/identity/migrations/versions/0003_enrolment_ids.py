"""custodial wallets remember the enrolment order that opened them

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
    op.add_column("custodial_wallets", sa.Column("enrolment_id", sa.String(32), nullable=True))
    op.create_unique_constraint("custodial_wallets_enrolment_id_key", "custodial_wallets", ["enrolment_id"])


def downgrade() -> None:
    op.drop_constraint("custodial_wallets_enrolment_id_key", "custodial_wallets", type_="unique")
    op.drop_column("custodial_wallets", "enrolment_id")
