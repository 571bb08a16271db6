"""Grid limits for chargers not heard from: since when each charger has owed a decision (a raise
is held for its lowering only that long), and the most each connector may hold since its charger
last acknowledged all it was sent (what an unheard charger is counted as drawing).

Revision ID: 0032
Revises: 0031
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("grid_deliveries", sa.Column("owed_since", UTCDateTime()))
    op.add_column("grid_allocations", sa.Column("held_w", sa.Integer))
    # A decision owed now has been owed at least since it was made.
    op.execute("UPDATE grid_deliveries SET owed_since = decided_at WHERE delivered < decision")


def downgrade() -> None:
    op.drop_column("grid_allocations", "held_w")
    op.drop_column("grid_deliveries", "owed_since")
