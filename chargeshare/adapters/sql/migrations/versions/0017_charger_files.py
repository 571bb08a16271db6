"""Firmware images served to chargers and the logs they upload, each behind a URL token.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "charger_files",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("token", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("charge_point_id", sa.String(64)),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("content", sa.LargeBinary),
        sa.Column("size", sa.BigInteger),
        sa.Column("sha256", sa.String(64)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime()),
    )
    op.create_index("ix_charger_files_charger", "charger_files", ["charge_point_id"])


def downgrade() -> None:
    op.drop_index("ix_charger_files_charger", "charger_files")
    op.drop_table("charger_files")
