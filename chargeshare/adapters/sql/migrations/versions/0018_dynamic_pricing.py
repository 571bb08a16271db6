"""Hosts' pricing settings (flat or dynamic within bounds, their own tariff) and bookings' quotes.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "host_pricing",
        sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id"), primary_key=True),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("floor_per_kwh", sa.Integer, nullable=False),
        sa.Column("ceiling_per_kwh", sa.Integer, nullable=False),
        sa.Column("own_day_per_kwh", sa.Integer, nullable=False),
        sa.Column("own_night_per_kwh", sa.Integer, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "0 < floor_per_kwh AND floor_per_kwh <= ceiling_per_kwh", name="ck_host_pricing_bounds"
        ),
    )
    op.create_table(
        "booking_quotes",
        sa.Column("booking_id", sa.Integer, sa.ForeignKey("bookings.id"), primary_key=True),
        sa.Column("price_per_kwh", sa.Integer, nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("quoted_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("price_per_kwh >= 0", name="ck_booking_quotes_price"),
    )


def downgrade() -> None:
    op.drop_table("booking_quotes")
    op.drop_table("host_pricing")
