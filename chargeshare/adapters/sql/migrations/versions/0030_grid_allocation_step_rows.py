"""A connector's decided limit may carry several later steps (each flexibility event edge within
the look-ahead where its limit changes), one row each, in place of the single step on its row.

Revision ID: 0030
Revises: 0029
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "grid_allocation_steps",
        sa.Column("connector_id", sa.Integer(), sa.ForeignKey("connectors.id"), primary_key=True),
        sa.Column("at", UTCDateTime(), primary_key=True),
        sa.Column("limit_w", sa.Integer(), nullable=False),
    )
    op.execute(
        "INSERT INTO grid_allocation_steps (connector_id, at, limit_w) "
        "SELECT connector_id, then_at, then_w FROM grid_allocations WHERE then_at IS NOT NULL"
    )
    with op.batch_alter_table("grid_allocations") as batch:
        batch.drop_column("then_w")
        batch.drop_column("then_at")


def downgrade() -> None:
    with op.batch_alter_table("grid_allocations") as batch:
        batch.add_column(sa.Column("then_at", UTCDateTime()))
        batch.add_column(sa.Column("then_w", sa.Integer()))
    # One step per row again: the first of each connector's.
    op.execute(
        "UPDATE grid_allocations SET "
        "then_at = (SELECT min(s.at) FROM grid_allocation_steps s "
        "WHERE s.connector_id = grid_allocations.connector_id), "
        "then_w = (SELECT s.limit_w FROM grid_allocation_steps s "
        "WHERE s.connector_id = grid_allocations.connector_id ORDER BY s.at LIMIT 1)"
    )
    op.drop_table("grid_allocation_steps")
