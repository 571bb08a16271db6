"""A session whose connector was reported free before its stop arrived waits for it.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("freed_at", UTCDateTime()))


def downgrade() -> None:
    op.drop_column("sessions", "freed_at")
