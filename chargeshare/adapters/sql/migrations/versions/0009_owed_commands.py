"""Partial indexes for what chargers are owed: reservations still sent or held, open sessions.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import OPEN_SESSION, OWED_RESERVATION

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_bookings_reservation_owed",
        "bookings",
        ["connector_id"],
        sqlite_where=sa.text(OWED_RESERVATION),
        postgresql_where=sa.text(OWED_RESERVATION),
    )
    op.create_index(
        "ix_sessions_open",
        "sessions",
        ["connector_id"],
        sqlite_where=sa.text(OPEN_SESSION),
        postgresql_where=sa.text(OPEN_SESSION),
    )


def downgrade() -> None:
    op.drop_index("ix_sessions_open", "sessions")
    op.drop_index("ix_bookings_reservation_owed", "bookings")
