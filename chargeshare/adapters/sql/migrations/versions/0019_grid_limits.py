"""Site and feeder supply limits: feeders, sites, the chargers on each, flexibility events, and each
connector's limit as last decided.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "grid_feeders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("limit_w", sa.Integer, nullable=False),
        sa.CheckConstraint("limit_w > 0", name="ck_grid_feeders_limit"),
    )
    op.create_table(
        "grid_sites",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("limit_w", sa.Integer, nullable=False),
        sa.Column("house_load_w", sa.Integer, nullable=False),
        sa.Column("feeder_id", sa.Integer, sa.ForeignKey("grid_feeders.id")),
        sa.CheckConstraint("limit_w > 0", name="ck_grid_sites_limit"),
        sa.CheckConstraint("house_load_w >= 0", name="ck_grid_sites_house_load"),
    )
    op.create_index("ix_grid_sites_host", "grid_sites", ["host_id"])
    op.create_table(
        "grid_site_chargers",
        sa.Column("charger_id", sa.Integer, sa.ForeignKey("chargers.id"), primary_key=True),
        sa.Column("site_id", sa.Integer, sa.ForeignKey("grid_sites.id"), nullable=False),
    )
    op.create_index("ix_grid_site_chargers_site", "grid_site_chargers", ["site_id"])
    op.create_table(
        "grid_flex_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("target_id", sa.Integer, nullable=False),
        sa.Column("limit_w", sa.Integer, nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("limit_w >= 0", name="ck_grid_flex_events_limit"),
    )
    op.create_index("ix_grid_flex_events_ends", "grid_flex_events", ["ends_at"])
    op.create_table(
        "grid_allocations",
        sa.Column("connector_id", sa.Integer, sa.ForeignKey("connectors.id"), primary_key=True),
        sa.Column("limit_w", sa.Integer, nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("grid_allocations")
    op.drop_index("ix_grid_flex_events_ends", "grid_flex_events")
    op.drop_table("grid_flex_events")
    op.drop_index("ix_grid_site_chargers_site", "grid_site_chargers")
    op.drop_table("grid_site_chargers")
    op.drop_index("ix_grid_sites_host", "grid_sites")
    op.drop_table("grid_sites")
    op.drop_table("grid_feeders")
