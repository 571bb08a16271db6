"""When each site's house load in force was measured (`grid_sites.house_load_at`), so a meter's
older reading written after a newer one is ignored instead of standing.

Revision ID: 0034
Revises: 0033
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for the loads already kept: their time is unknown, so the next reading replaces them.
    op.add_column("grid_sites", sa.Column("house_load_at", UTCDateTime()))


def downgrade() -> None:
    op.drop_column("grid_sites", "house_load_at")
