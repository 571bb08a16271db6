"""V2G on OCPP 2.1: a booking's export terms and its metered export with the credit paid for it.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "v2g_terms",
        sa.Column("booking_id", sa.Integer, sa.ForeignKey("bookings.id"), primary_key=True),
        sa.Column("price_per_kwh", sa.Integer, nullable=False),
        sa.Column("soc_floor_pct", sa.Integer, nullable=False),
        sa.Column("set_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("price_per_kwh BETWEEN 0 AND 1000", name="ck_v2g_terms_price"),
        sa.CheckConstraint("soc_floor_pct BETWEEN 10 AND 100", name="ck_v2g_terms_floor"),
    )
    op.create_table(
        "v2g_exports",
        sa.Column("booking_id", sa.Integer, sa.ForeignKey("bookings.id"), primary_key=True),
        sa.Column("start_wh", sa.BigInteger),
        sa.Column("last_wh", sa.BigInteger),
        sa.Column("soc_pct", sa.Integer),
        sa.Column("lowest_soc_pct", sa.Integer),
        sa.Column("exported_wh", sa.BigInteger),
        sa.Column("credit", sa.Integer),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("v2g_exports")
    op.drop_table("v2g_terms")
