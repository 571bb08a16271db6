"""Quotes held for drivers: the price a driver was shown, bound to them, one charger and one window
until it expires, used by one booking at most.

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "held_quotes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("driver_id", sa.Integer, sa.ForeignKey("drivers.id"), nullable=False),
        sa.Column("charger_id", sa.Integer, sa.ForeignKey("chargers.id"), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("immediate", sa.Boolean, nullable=False),
        sa.Column("price_per_kwh", sa.Integer, nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("quoted_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("booking_id", sa.Integer, sa.ForeignKey("bookings.id"), unique=True),
        sa.CheckConstraint("price_per_kwh >= 0", name="ck_held_quotes_price"),
        sa.CheckConstraint("starts_at < ends_at AND quoted_at < expires_at", name="ck_held_quotes_times"),
    )


def downgrade() -> None:
    op.drop_table("held_quotes")
