"""Drivers' payout checks (only a verified driver is paid V2G export credits), and the index the
housekeeping sweep finds expired quotes no booking used by.

Revision ID: 0026
Revises: 0025
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UNUSED_QUOTE, UTCDateTime

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "driver_kyc",
        sa.Column("driver_id", sa.Integer, sa.ForeignKey("drivers.id"), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'verified', 'rejected')", name="ck_driver_kyc_status"),
    )
    op.create_index(
        "ix_held_quotes_unused_expiry",
        "held_quotes",
        ["expires_at"],
        sqlite_where=sa.text(UNUSED_QUOTE),
        postgresql_where=sa.text(UNUSED_QUOTE),
    )


def downgrade() -> None:
    op.drop_index("ix_held_quotes_unused_expiry", table_name="held_quotes")
    op.drop_table("driver_kyc")
