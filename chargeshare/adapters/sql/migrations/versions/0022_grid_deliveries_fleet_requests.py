"""Grid limits owed to chargers: each charger's latest decision and the latest it acknowledged, so a
decision not delivered (charger offline, a refusal, a crash after the commit) is sent again; and
site and feeder limits of at least one car's minimum (6 A on one phase) on PostgreSQL; and fleet
requests made under an Idempotency-Key (payments, block bookings), each answered once.

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

MIN_CHARGING_W = 1_380  # as chargeshare/domain/grid_limits.py says it at this revision


def upgrade() -> None:
    op.create_table(
        "grid_deliveries",
        sa.Column("charger_id", sa.Integer, sa.ForeignKey("chargers.id"), primary_key=True),
        sa.Column("decision", sa.Integer, nullable=False),
        sa.Column("delivered", sa.Integer, nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("delivered <= decision", name="ck_grid_deliveries_order"),
    )
    op.create_table(
        "fleet_requests",
        sa.Column("fleet_id", sa.Integer, sa.ForeignKey("fleet_accounts.id"), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("request_key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(500), nullable=False),
        sa.Column("ref_id", sa.Integer),
        sa.Column("value", sa.Integer),
        sa.Column("made_at", UTCDateTime(), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        # SQLite would rebuild the tables to change a check; its rows are checked by the domain.
        for table, name in (("grid_sites", "ck_grid_sites_limit"), ("grid_feeders", "ck_grid_feeders_limit")):
            op.drop_constraint(name, table, type_="check")
            op.create_check_constraint(name, table, f"limit_w >= {MIN_CHARGING_W}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, name in (("grid_sites", "ck_grid_sites_limit"), ("grid_feeders", "ck_grid_feeders_limit")):
            op.drop_constraint(name, table, type_="check")
            op.create_check_constraint(name, table, "limit_w > 0")
    op.drop_table("fleet_requests")
    op.drop_table("grid_deliveries")
