"""Who buys a guest's V2G export: each host's choice (`host_export_buyers`, no row: the grid
buyer) and the buyer fixed on a booking's export record when its export starts
(`v2g_exports.buyer`).

Revision ID: 0036
Revises: 0035
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every record kept before was sold to the grid buyer: the server default says so.
    with op.batch_alter_table("v2g_exports") as batch:
        batch.add_column(sa.Column("buyer", sa.String(8), nullable=False, server_default="grid"))
        batch.create_check_constraint("ck_v2g_exports_buyer", "buyer IN ('grid', 'home')")
    op.create_table(
        "host_export_buyers",
        sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id"), primary_key=True),
        sa.Column("buyer", sa.String(8), nullable=False),
        sa.Column("set_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("buyer IN ('grid', 'home')", name="ck_host_export_buyers_buyer"),
    )


def downgrade() -> None:
    op.drop_table("host_export_buyers")
    with op.batch_alter_table("v2g_exports") as batch:
        batch.drop_constraint("ck_v2g_exports_buyer", type_="check")
        batch.drop_column("buyer")
