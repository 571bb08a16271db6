"""Chargers' boot policy: Accepted, Pending or Rejected.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every charger registered before this revision was in service: it stays Accepted.
    op.add_column(
        "chargers", sa.Column("boot_policy", sa.String(8), nullable=False, server_default="Accepted")
    )


def downgrade() -> None:
    op.drop_column("chargers", "boot_policy")
