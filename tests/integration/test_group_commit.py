"""OCPP group commit on a SQLite file: deferred writes skip their own fsync, everything acknowledged
after `flushed()` is still there when the file is opened again, and other writers keep FULL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.pool import QueuePool

from chargeshare.adapters.durability import ImmediateDurability, PostgresGroupCommit, SqliteGroupCommit
from chargeshare.adapters.sql import SqlStore
from chargeshare.bootstrap import Config, build
from chargeshare.domain.charger import (
    ChargerSpec,
    ChargerStatus,
    ConnectorSpec,
    ConnectorStatus,
    ConnectorType,
)
from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff
from chargeshare.ocpp import V16
from tests.conftest import sql_store


def _synchronous_level(store: SqlStore) -> int:
    """The level the connection a write transaction gets runs at (1 NORMAL, 2 FULL)."""
    with store.transaction() as tx:
        return int(tx.conn.exec_driver_sql("PRAGMA synchronous").scalar_one())


def test_deferred_writes_run_at_normal_and_every_other_write_at_full(tmp_path: Path) -> None:
    app = build(Config(database_url=f"sqlite:///{tmp_path / 'levels.db'}"))
    try:
        assert isinstance(app.durability, SqliteGroupCommit)
        with app.durability.deferred():
            assert _synchronous_level(sql_store(app)) == 1
        assert _synchronous_level(sql_store(app)) == 2
    finally:
        app.close()


def test_memory_database_acknowledges_at_once() -> None:
    app = build(Config(database_url="sqlite://"))
    try:
        assert isinstance(app.durability, ImmediateDurability)
    finally:
        app.close()


async def test_acknowledged_writes_survive_closing_and_reopening_the_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'acks.db'}"
    app = build(Config(database_url=url))
    n = 60
    try:
        host = app.marketplace.add_host("h")
        for i in range(n):
            connectors = (ConnectorSpec(1, ConnectorType.TYPE2, 7_400),)
            app.marketplace.add_charger(ChargerSpec(f"G{i}", host, Point(51.5, -0.1), Tariff(30), connectors))
        assert isinstance(app.durability, SqliteGroupCommit)
        runs_before = app.durability.flusher.runs
        for i in range(n):  # as the OCPP serve loop does: write deferred, ack after flushed()
            with app.durability.deferred():
                app.charging.boot(f"G{i}", V16)
                app.charging.status(f"G{i}", 1, ConnectorStatus.CHARGING)
            await app.durability.flushed()
        assert app.durability.flusher.runs - runs_before == n
    finally:
        app.close()

    reopened = build(Config(database_url=url), create_schema=False)
    try:
        with reopened.store.reading() as tx:
            views = {v.charge_point_id: v for v in tx.chargers.all()}
        assert len(views) == n
        for i in range(n):
            view = views[f"G{i}"]
            assert view.status == ChargerStatus.ONLINE and view.ocpp_version == V16
            assert [c.status for c in view.connectors] == [ConnectorStatus.CHARGING]
    finally:
        reopened.close()


def test_a_thread_that_defers_keeps_one_connection_and_an_ended_threads_is_closed(tmp_path: Path) -> None:
    app = build(Config(database_url=f"sqlite:///{tmp_path / 'held.db'}"))
    checkouts: list[object] = []
    event.listen(sql_store(app).engine, "checkout", lambda *args: checkouts.append(args[0]))
    try:
        before = len(checkouts)
        with app.durability.deferred():  # from now on this thread keeps its connection
            pass
        for _ in range(5):
            assert _synchronous_level(sql_store(app)) == 2  # outside deferred(): FULL, on the kept one
            with app.durability.deferred():
                assert _synchronous_level(sql_store(app)) == 1
        assert len(checkouts) - before == 1  # one checkout for eleven units of work

        def elsewhere() -> None:
            with app.durability.deferred():
                assert _synchronous_level(sql_store(app)) == 1

        worker = threading.Thread(target=elsewhere)
        worker.start()
        worker.join()
        pool = sql_store(app).engine.pool
        assert isinstance(pool, QueuePool)
        assert pool.checkedout() == 2  # this thread's and the ended worker's
        other = threading.Thread(target=elsewhere)
        other.start()
        other.join()
        assert pool.checkedout() == 2  # the ended worker's went back as the new one was taken
    finally:
        app.close()


# ---- PostgreSQL ------------------------------------------------------------------------------------


def _synchronous_commit(store: SqlStore) -> str:
    with store.transaction() as tx:
        return str(tx.conn.exec_driver_sql("SHOW synchronous_commit").scalar_one())


def _lsn(store: SqlStore, function: str) -> int:
    """A WAL position as a number: pg_current_wal_insert_lsn (written so far) or _flush_lsn (on disk)."""
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT {function}() - '0/0'::pg_lsn").scalar_one())


@pytest.mark.postgres
def test_on_postgres_deferred_commits_skip_the_flush_and_every_other_commit_waits(postgres_url: str) -> None:
    app = build(Config(database_url=postgres_url))
    try:
        assert isinstance(app.durability, PostgresGroupCommit)
        with app.durability.deferred():
            assert _synchronous_commit(sql_store(app)) == "off"
        assert _synchronous_commit(sql_store(app)) == "on"
        with sql_store(app).reading() as tx:  # reads never take the deferred connections
            assert tx.conn.exec_driver_sql("SHOW synchronous_commit").scalar_one() == "on"
    finally:
        app.close()


@pytest.mark.postgres
async def test_on_postgres_flushed_puts_every_deferred_commit_before_it_on_disk(postgres_url: str) -> None:
    app = build(Config(database_url=postgres_url))
    n = 30
    try:
        host = app.marketplace.add_host("h")
        for i in range(n):
            connectors = (ConnectorSpec(1, ConnectorType.TYPE2, 7_400),)
            app.marketplace.add_charger(ChargerSpec(f"P{i}", host, Point(51.5, -0.1), Tariff(30), connectors))
        assert isinstance(app.durability, PostgresGroupCommit)
        store = sql_store(app)
        runs_before = app.durability.flusher.runs
        for i in range(n):  # as the OCPP serve loop does: write deferred, ack after flushed()
            with app.durability.deferred():
                app.charging.boot(f"P{i}", V16)
                app.charging.status(f"P{i}", 1, ConnectorStatus.CHARGING)
            written = _lsn(store, "pg_current_wal_insert_lsn")  # past this frame's commit record
            await app.durability.flushed()
            assert _lsn(store, "pg_current_wal_flush_lsn") >= written
        assert app.durability.flusher.runs - runs_before == n
        with store.reading() as tx:
            views = {v.charge_point_id: v for v in tx.chargers.all()}
        assert all(views[f"P{i}"].status == ChargerStatus.ONLINE for i in range(n))
    finally:
        app.close()
