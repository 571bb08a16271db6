"""What a late stop did to its session: when it billed the session in full (`late_rebilled_at`),
and the export register's reading it carried (`late_export_wh`: above the one credited, kept with
its import reading when the session could not be billed again).

Revision ID: 0033
Revises: 0032
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("late_rebilled_at", UTCDateTime()))
    op.add_column("sessions", sa.Column("late_export_wh", sa.BigInteger))


def downgrade() -> None:
    op.drop_column("sessions", "late_export_wh")
    op.drop_column("sessions", "late_rebilled_at")
