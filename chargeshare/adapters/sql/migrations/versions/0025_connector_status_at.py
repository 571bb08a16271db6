"""A connector remembers the time of the report its status came from, so a report that arrives
after a newer one (replayed from a queue, or overtaken in flight) does not overwrite it.

Revision ID: 0025
Revises: 0024
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("connectors", sa.Column("status_at", UTCDateTime()))


def downgrade() -> None:
    op.drop_column("connectors", "status_at")
