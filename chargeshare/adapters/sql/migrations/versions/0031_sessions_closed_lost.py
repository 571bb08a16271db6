"""Which sessions the lost-stop sweep closed: only those take a late stop's reading (a session its
charger stopped was billed on that stop). Sessions closed before this revision are taken as
stopped by their charger, so a late stop for one is answered and changes nothing.

Revision ID: 0031
Revises: 0030
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "sessions", sa.Column("closed_lost", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    op.drop_column("sessions", "closed_lost")
