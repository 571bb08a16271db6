"""Drivers' id tokens, and chargers that take walk-in tokens.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "id_tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("driver_id", sa.Integer, sa.ForeignKey("drivers.id"), nullable=False),
        sa.Column("value", sa.String(20), nullable=False, unique=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("expires_at", UTCDateTime()),
        sa.Column("group_id", sa.String(20)),
        sa.Column("master_pass", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_id_tokens_driver_id", "id_tokens", ["driver_id"])
    op.create_table(
        "walk_in_chargers",
        sa.Column("charger_id", sa.Integer, sa.ForeignKey("chargers.id"), primary_key=True),
        sa.Column("price_per_kwh", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("walk_in_chargers")
    op.drop_index("ix_id_tokens_driver_id", "id_tokens")
    op.drop_table("id_tokens")
