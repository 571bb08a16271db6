"""Payment steps claimed by one worker, chargers' security events, the simulated provider's books.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payment_outbox", sa.Column("claimed_by", sa.String(64)))
    op.add_column("payment_outbox", sa.Column("lease_until", UTCDateTime()))
    op.add_column("payment_outbox", sa.Column("reference", sa.String(64)))
    op.create_table(
        "security_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("charge_point_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(48), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_security_events_charge_point_id", "security_events", ["charge_point_id"])
    op.create_table(
        "sim_gateway_holds",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("customer", sa.String(64), nullable=False),
        sa.Column("amount", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("captured", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
    )
    op.create_table(
        "sim_gateway_replies",
        sa.Column("idempotency_key", sa.String(120), primary_key=True),
        sa.Column("approved", sa.Boolean),
        sa.Column("reference", sa.String(64)),
        sa.Column("reason", sa.String(200)),
    )
    op.create_table(
        "sim_gateway_settings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("settings", sa.String(2000), nullable=False),
    )


def downgrade() -> None:
    for table in ("sim_gateway_settings", "sim_gateway_replies", "sim_gateway_holds", "security_events"):
        op.drop_table(table)
    for column in ("reference", "lease_until", "claimed_by"):
        op.drop_column("payment_outbox", column)
