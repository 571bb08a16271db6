"""A reading on PostgreSQL sees one snapshot, as it does on SQLite: what commits between two of
its statements is not half-seen. The invariants and the yearly HMRC report read many tables in one
reading; under READ COMMITTED each statement saw its own snapshot, so a check run while traffic
flows could pair a ledger entry with a session it had not seen and report a breach that is not one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from chargeshare.adapters.sql import SqlStore
from chargeshare.adapters.sql import schema as t

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(postgres_url: str) -> Iterator[SqlStore]:
    store = SqlStore(postgres_url)
    store.create_schema()
    yield store
    store.close()


def hosts(tx: object) -> int:
    return int(tx.conn.execute(select(func.count()).select_from(t.hosts)).scalar_one())  # type: ignore[attr-defined]


def test_a_reading_does_not_see_what_commits_between_its_statements(pg: SqlStore) -> None:
    with pg.transaction() as tx:
        tx.accounts.add_host("first")
    with pg.reading() as reading:
        assert hosts(reading) == 1
        with pg.transaction() as tx:
            tx.accounts.add_host("second")  # committed while the reading is open
        assert hosts(reading) == 1
    with pg.reading() as reading:
        assert hosts(reading) == 2


def test_a_unit_of_work_after_a_reading_reads_committed_again(pg: SqlStore) -> None:
    # The same pooled connection serves both: a write transaction is READ COMMITTED, as before.
    with pg.reading() as reading:
        hosts(reading)
    with pg.transaction() as tx:
        level = tx.conn.exec_driver_sql("SHOW transaction_isolation").scalar_one()
    assert level == "read committed"
    with pg.reading() as reading:
        assert reading.conn.exec_driver_sql("SHOW transaction_isolation").scalar_one() == "repeatable read"
