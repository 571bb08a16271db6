"""A connector's decided limit may carry the step it is already known to take later (a
flexibility event beginning or ending), so its charger is told ahead and changes on time.

Revision ID: 0027
Revises: 0026
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("grid_allocations") as batch:
        batch.add_column(sa.Column("then_at", UTCDateTime()))
        batch.add_column(sa.Column("then_w", sa.Integer()))


def downgrade() -> None:
    with op.batch_alter_table("grid_allocations") as batch:
        batch.drop_column("then_w")
        batch.drop_column("then_at")
