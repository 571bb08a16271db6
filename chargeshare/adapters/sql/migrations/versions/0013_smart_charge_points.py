"""Chargers' settings under the Smart Charge Points Regulations 2021, and drivers' overrides.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "charger_smart_settings",
        sa.Column("charger_id", sa.Integer, sa.ForeignKey("chargers.id"), primary_key=True),
        sa.Column("randomised_delay_max_s", sa.Integer, nullable=False),
        sa.Column("randomised_delay_override", sa.Boolean, nullable=False),
        sa.Column("default_charging_hours", sa.Boolean, nullable=False),
        sa.Column("demand_side_response", sa.Boolean, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "randomised_delay_max_s BETWEEN 0 AND 1800", name="ck_charger_smart_settings_delay_max"
        ),
    )
    op.create_table(
        "booking_overrides",
        sa.Column("booking_id", sa.Integer, sa.ForeignKey("bookings.id"), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("booking_overrides")
    op.drop_table("charger_smart_settings")
