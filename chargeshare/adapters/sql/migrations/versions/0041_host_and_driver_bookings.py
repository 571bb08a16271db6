"""Indexes for the bookings listings: chargers by host, bookings by driver.

On PostgreSQL they are built CONCURRENTLY, outside the migration's transaction: a plain CREATE INDEX
holds every writer of `bookings` and `chargers` for as long as it reads the table. A build cut short
leaves an invalid index behind, so each is dropped first if there: running it again finishes it.

Revision ID: 0041
Revises: 0040
"""

from __future__ import annotations

from alembic import op

revision = "0041"
down_revision = "0040"
branch_labels = None
depends_on = None

INDEXES = (("ix_chargers_host_id", "chargers", "host_id"), ("ix_bookings_driver_id", "bookings", "driver_id"))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name, table, column in INDEXES:
            op.create_index(name, table, [column])
        return
    with op.get_context().autocommit_block():
        for name, table, column in INDEXES:
            op.drop_index(name, table, postgresql_concurrently=True, if_exists=True)
            op.create_index(name, table, [column], postgresql_concurrently=True)


def downgrade() -> None:
    for name, table, _column in reversed(INDEXES):
        op.drop_index(name, table)
