"""Fleet-share hubs: fleet accounts, block contracts, their occurrences (bookings) and invoices.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fleet_accounts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("driver_id", sa.Integer, sa.ForeignKey("drivers.id"), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "fleet_contracts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("fleet_id", sa.Integer, sa.ForeignKey("fleet_accounts.id"), nullable=False),
        sa.Column("weekdays", sa.String(16), nullable=False),
        sa.Column("start_minute", sa.Integer, nullable=False),
        sa.Column("end_minute", sa.Integer, nullable=False),
        sa.Column("first_day", sa.Date, nullable=False),
        sa.Column("last_day", sa.Date, nullable=False),
        sa.Column("notice_s", sa.Integer, nullable=False),
        sa.Column("late_penalty", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_fleet_contracts_fleet_id", "fleet_contracts", ["fleet_id"])
    op.create_table(
        "fleet_contract_connectors",
        sa.Column("contract_id", sa.Integer, sa.ForeignKey("fleet_contracts.id"), primary_key=True),
        sa.Column("connector_id", sa.Integer, sa.ForeignKey("connectors.id"), primary_key=True),
    )
    op.create_table(
        "fleet_occurrences",
        sa.Column("booking_id", sa.Integer, sa.ForeignKey("bookings.id"), primary_key=True),
        sa.Column("contract_id", sa.Integer, sa.ForeignKey("fleet_contracts.id"), nullable=False),
        sa.Column("fleet_id", sa.Integer, sa.ForeignKey("fleet_accounts.id"), nullable=False),
    )
    op.create_index("ix_fleet_occurrences_contract_id", "fleet_occurrences", ["contract_id"])
    op.create_index("ix_fleet_occurrences_fleet_id", "fleet_occurrences", ["fleet_id"])
    op.create_table(
        "fleet_invoices",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("fleet_id", sa.Integer, sa.ForeignKey("fleet_accounts.id"), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("paid", sa.Integer, nullable=False, server_default="0"),
        sa.Column("paid_at", UTCDateTime()),
        sa.UniqueConstraint("fleet_id", "month", name="uq_fleet_invoice_month"),
    )
    op.create_table(
        "fleet_invoice_lines",
        sa.Column("entry_id", sa.String(64), sa.ForeignKey("ledger_entries.id"), primary_key=True),
        sa.Column("invoice_id", sa.Integer, sa.ForeignKey("fleet_invoices.id"), nullable=False),
        sa.Column("booking_id", sa.Integer, sa.ForeignKey("bookings.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("amount", sa.Integer, nullable=False),
        sa.Column("energy_wh", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_fleet_invoice_lines_invoice_id", "fleet_invoice_lines", ["invoice_id"])


def downgrade() -> None:
    op.drop_index("ix_fleet_invoice_lines_invoice_id", "fleet_invoice_lines")
    op.drop_table("fleet_invoice_lines")
    op.drop_table("fleet_invoices")
    op.drop_index("ix_fleet_occurrences_fleet_id", "fleet_occurrences")
    op.drop_index("ix_fleet_occurrences_contract_id", "fleet_occurrences")
    op.drop_table("fleet_occurrences")
    op.drop_table("fleet_contract_connectors")
    op.drop_index("ix_fleet_contracts_fleet_id", "fleet_contracts")
    op.drop_table("fleet_contracts")
    op.drop_table("fleet_accounts")
