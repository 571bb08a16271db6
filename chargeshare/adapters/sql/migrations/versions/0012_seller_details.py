"""Hosts' seller details for HMRC's digital platform reporting (name, address, date of birth, tax
identifier, bank account).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from chargeshare.adapters.sql.schema import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "host_seller_details",
        sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id"), primary_key=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("first_names", sa.String(200), nullable=False),
        sa.Column("last_name", sa.String(200), nullable=False),
        sa.Column("legal_name", sa.String(200), nullable=False),
        sa.Column("birth_date", sa.Date),
        sa.Column("address_line1", sa.String(200), nullable=False),
        sa.Column("address_line2", sa.String(200), nullable=False),
        sa.Column("city", sa.String(200), nullable=False),
        sa.Column("postcode", sa.String(20), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("tax_id_kind", sa.String(4), nullable=False),
        sa.Column("tax_id", sa.String(200), nullable=False),
        sa.Column("tax_id_country", sa.String(2), nullable=False),
        sa.Column("company_number", sa.String(8), nullable=False),
        sa.Column("sort_code", sa.String(8)),
        sa.Column("account_number", sa.String(8)),
        sa.Column("iban", sa.String(34)),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("host_seller_details")
