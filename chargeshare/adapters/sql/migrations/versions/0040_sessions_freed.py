"""A partial index for the lost-stop sweep: open sessions whose connector was reported free, by when.

Revision ID: 0040
Revises: 0039
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import FREED_OPEN_SESSION

revision = "0040"
down_revision = "0039"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_sessions_freed",
        "sessions",
        ["freed_at"],
        sqlite_where=sa.text(FREED_OPEN_SESSION),
        postgresql_where=sa.text(FREED_OPEN_SESSION),
    )


def downgrade() -> None:
    op.drop_index("ix_sessions_freed", "sessions")
