"""A connector remembers when its charger last reported it Available, so a start replayed after
that report is known to be over (and its stop awaited, or taken as lost).

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("connectors", sa.Column("available_at", UTCDateTime()))


def downgrade() -> None:
    op.drop_column("connectors", "available_at")
