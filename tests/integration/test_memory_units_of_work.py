"""Units of work on the in-memory SQLite store (the DES's): committed when the body ends, rolled
back when it raises, a busy database raised as DatabaseBusy, the store usable afterwards."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from chargeshare.adapters.sql.store import SqlStore
from chargeshare.domain.errors import DatabaseBusy


@pytest.fixture
def store() -> SqlStore:
    s = SqlStore("sqlite://")
    s.create_schema()
    return s


def hosts(store: SqlStore) -> int:
    with store.reading() as tx:
        return int(tx.conn.exec_driver_sql("SELECT count(*) FROM hosts").scalar_one())


def test_a_unit_commits_both_ways_of_writing(store: SqlStore) -> None:
    with store.transaction() as tx:  # through SQLAlchemy: it commits
        tx.conn.exec_driver_sql("INSERT INTO hosts (name) VALUES ('h')")
    with store.transaction() as tx:  # straight on the driver: the store commits
        cursor = tx.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute("INSERT INTO hosts (name) VALUES ('h')")
        cursor.close()
    assert hosts(store) == 2


@pytest.mark.parametrize("via_driver", [False, True])
def test_a_unit_that_raises_keeps_nothing_and_frees_the_store(store: SqlStore, via_driver: bool) -> None:
    with pytest.raises(KeyError, match="boom"), store.transaction() as tx:
        if via_driver:
            tx.conn.connection.dbapi_connection.execute("INSERT INTO hosts (name) VALUES ('h')")  # type: ignore[union-attr]
        else:
            tx.conn.exec_driver_sql("INSERT INTO hosts (name) VALUES ('h')")
        raise KeyError("boom")
    assert hosts(store) == 0
    # The connection's lock was let go: another thread gets its unit of work.
    seen: list[int] = []
    other = threading.Thread(target=lambda: seen.append(hosts(store)))
    other.start()
    other.join(timeout=10)
    assert seen == [0]


def test_a_busy_database_inside_a_unit_is_raised_as_busy(store: SqlStore) -> None:
    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorcode = sqlite3.SQLITE_BUSY
    with pytest.raises(DatabaseBusy) as caught, store.transaction():
        raise locked
    assert caught.value.__cause__ is locked
    assert hosts(store) == 0


def test_observed_units_are_timed_and_still_commit(store: SqlStore) -> None:
    took: list[float] = []
    store.unit_observers.append(took.append)
    with store.transaction() as tx:
        tx.conn.exec_driver_sql("INSERT INTO hosts (name) VALUES ('h')")
    assert len(took) == 1
    assert hosts(store) == 1
    assert len(took) == 2  # a reading is a unit of work too
