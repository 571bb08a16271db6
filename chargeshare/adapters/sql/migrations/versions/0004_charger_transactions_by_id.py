"""OCPP 2.0.1 transaction ids looked up by the id alone, whichever charger runs them.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_charger_transactions_transaction_id", "charger_transactions", ["transaction_id"])


def downgrade() -> None:
    op.drop_index("ix_charger_transactions_transaction_id", "charger_transactions")
