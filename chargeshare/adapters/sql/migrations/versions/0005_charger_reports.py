"""What chargers report about themselves; security events they send; sessions billed unmetered.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "charger_reports",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("charger_id", sa.Integer, sa.ForeignKey("chargers.id"), nullable=False),
        sa.Column("action", sa.String(48), nullable=False),
        sa.Column("summary", sa.String(500), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("reported_at", UTCDateTime()),
        sa.Column("received_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_charger_reports_charger_action", "charger_reports", ["charger_id", "action"])
    # Rows already there were all seen by the backend; sessions already billed had readings or not,
    # which nobody can tell now: they stay unflagged.
    op.add_column(
        "security_events", sa.Column("source", sa.String(8), nullable=False, server_default="backend")
    )
    op.add_column("sessions", sa.Column("unmetered", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("sessions", "unmetered")
    op.drop_column("security_events", "source")
    op.drop_index("ix_charger_reports_charger_action", "charger_reports")
    op.drop_table("charger_reports")
