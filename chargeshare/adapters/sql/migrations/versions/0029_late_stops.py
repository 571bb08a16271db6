"""A stop that came after its session was closed as lost: its reading, kept against the session.

Revision ID: 0029
Revises: 0028
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("late_stop_wh", sa.BigInteger))
    op.add_column("sessions", sa.Column("late_stop_at", UTCDateTime()))


def downgrade() -> None:
    op.drop_column("sessions", "late_stop_at")
    op.drop_column("sessions", "late_stop_wh")
