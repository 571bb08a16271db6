"""Indexes for the bookings listings: chargers by host, bookings by driver.

Revision ID: 0041
Revises: 0040
"""

from __future__ import annotations

from alembic import op

revision = "0041"
down_revision = "0040"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_chargers_host_id", "chargers", ["host_id"])
    op.create_index("ix_bookings_driver_id", "bookings", ["driver_id"])


def downgrade() -> None:
    op.drop_index("ix_bookings_driver_id", "bookings")
    op.drop_index("ix_chargers_host_id", "chargers")
