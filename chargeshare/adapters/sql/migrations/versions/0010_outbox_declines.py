"""Payment steps count the authorisations the card declined, so the next is asked under a new key.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Steps queued before this revision had their first authorisation asked under the key without a
    # count: with none counted, they go on asking under it.
    op.add_column("payment_outbox", sa.Column("declines", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("payment_outbox", "declines")
