"""The grid buyer's payment of a month's V2G export statement, one row per month.

Revision ID: 0028
Revises: 0027
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "grid_settlements",
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("exports", sa.Integer, nullable=False),
        sa.Column("entry_id", sa.String(64), nullable=False, unique=True),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_by", sa.Integer, sa.ForeignKey("accounts.id")),
        sa.CheckConstraint("amount > 0", name="ck_grid_settlements_amount"),
    )


def downgrade() -> None:
    op.drop_table("grid_settlements")
