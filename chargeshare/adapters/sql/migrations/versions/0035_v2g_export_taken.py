"""Which session's charger took its V2G export permission and profile
(`v2g_terms.export_taken_session`), so the owed-commands sweep sends them until it does.

Revision ID: 0035
Revises: 0034
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for terms already kept: a session still running on them is owed its export once more.
    op.add_column("v2g_terms", sa.Column("export_taken_session", sa.Integer()))


def downgrade() -> None:
    op.drop_column("v2g_terms", "export_taken_session")
