"""Sends of an owed command that went unanswered back off too (`command_refusals.unanswered`): a
record may hold no refusal, only unanswered sends.

Revision ID: 0039
Revises: 0038
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0039"
down_revision = "0038"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("command_refusals") as batch:
        batch.add_column(sa.Column("unanswered", sa.Integer(), nullable=False, server_default="0"))
        batch.drop_constraint("ck_command_refusals_count", type_="check")
        batch.create_check_constraint(
            "ck_command_refusals_count", "count >= 0 AND unanswered >= 0 AND count + unanswered >= 1"
        )


def downgrade() -> None:
    # Records of unanswered sends only have no refusal to keep.
    op.execute("DELETE FROM command_refusals WHERE count = 0")
    with op.batch_alter_table("command_refusals") as batch:
        batch.drop_constraint("ck_command_refusals_count", type_="check")
        batch.create_check_constraint("ck_command_refusals_count", "count >= 1")
        batch.drop_column("unanswered")
