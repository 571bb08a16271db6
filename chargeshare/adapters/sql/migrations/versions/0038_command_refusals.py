"""Commands a charger refuses are asked again on a back-off (`command_refusals`), and which session's
charger took its driver's override (`booking_overrides.taken_session`), so the sweep sends it until
one does.

Revision ID: 0038
Revises: 0036
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0038"
down_revision = "0036"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for overrides already kept: a session still running on one is owed it once more.
    op.add_column("booking_overrides", sa.Column("taken_session", sa.Integer()))
    op.create_table(
        "command_refusals",
        sa.Column("session_id", sa.Integer(), sa.ForeignKey("sessions.id"), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_at", UTCDateTime(), nullable=False),
        sa.Column("retry_at", UTCDateTime()),
        sa.CheckConstraint("kind IN ('export', 'override')", name="ck_command_refusals_kind"),
        sa.CheckConstraint("count >= 1", name="ck_command_refusals_count"),
    )


def downgrade() -> None:
    op.drop_table("command_refusals")
    op.drop_column("booking_overrides", "taken_session")
