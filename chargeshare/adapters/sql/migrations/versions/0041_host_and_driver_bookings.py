"""Indexes for the bookings listings: chargers by host, bookings by driver.

On PostgreSQL they are built CONCURRENTLY, outside the migration's transaction: a plain CREATE INDEX
holds every writer of `bookings` and `chargers` for as long as it reads the table. A concurrent build
waits for every transaction older than it to end (a long report, a backup), for as long as that takes:
it holds up no writer meanwhile, so the migration's lock timeout is lifted for it. A build cut short
leaves an invalid index behind, which is dropped and built again; a valid one is kept.

Revision ID: 0041
Revises: 0040
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import Connection, text

revision = "0041"
down_revision = "0040"
branch_labels = None
depends_on = None

INDEXES = (("ix_chargers_host_id", "chargers", "host_id"), ("ix_bookings_driver_id", "bookings", "driver_id"))


def _invalid(bind: Connection, name: str) -> bool:
    found = bind.execute(
        text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"), {"name": name}
    ).scalar()
    return found is False


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name, table, column in INDEXES:
            op.create_index(name, table, [column])
        return
    with op.get_context().autocommit_block():
        bind = op.get_bind()
        lock_timeout = bind.exec_driver_sql("SHOW lock_timeout").scalar()
        bind.exec_driver_sql("SET lock_timeout = 0")
        try:
            for name, table, column in INDEXES:
                if _invalid(bind, name):
                    op.drop_index(name, table, postgresql_concurrently=True)
                op.create_index(name, table, [column], postgresql_concurrently=True, if_not_exists=True)
        finally:
            bind.execute(text("SELECT set_config('lock_timeout', :value, false)"), {"value": lock_timeout})


def downgrade() -> None:
    for name, table, _column in reversed(INDEXES):
        op.drop_index(name, table)
