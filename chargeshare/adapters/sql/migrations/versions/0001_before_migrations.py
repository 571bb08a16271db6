"""The schema as it was before migrations existed.

A database made then has no version of its own: `migrate.upgrade` stamps it with this revision and
upgrades it from here. A fresh database is made straight from the metadata at the head revision and
stamped with it, so this revision's upgrade never has anything to do.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
