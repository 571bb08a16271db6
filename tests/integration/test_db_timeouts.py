"""Bounded waits on the database: a statement waits at most the lock timeout for a lock held by someone
else (SQLite: the busy timeout) and runs at most the statement timeout (PostgreSQL). Past either, the
API answers 503 with Retry-After and an OCPP call gets a CALLERROR, both of which the caller retries;
once the lock is gone the same request succeeds. The lock is held from another connection for the
whole refused request, so a refusal proves the wait was bounded without timing it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from chargeshare.adapters.sql import migrate
from chargeshare.bootstrap import App, Config, ConfigError, build
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorStatus, ConnectorType
from chargeshare.domain.errors import DatabaseBusy
from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff
from chargeshare.ocpp import V16, csms_v16
from chargeshare.ocpp.connection import Connection
from chargeshare.ocpp.frames import CallError, CallResult, parse
from chargeshare.services.clock import ManualClock
from tests import api_helpers as accounts
from tests.api.world import client
from tests.conftest import T0, sql_store

LOCK_TIMEOUT_S = 0.2
STATEMENT_TIMEOUT_S = 0.5
CP = "CPLOCK"
STATUS = '[2,"s{n}","StatusNotification",{{"connectorId":1,"errorCode":"NoError","status":"{status}"}}]'


def _app(database_url: str) -> App:
    config = Config(
        database_url=database_url,
        password_hash="fast",
        db_lock_timeout_s=LOCK_TIMEOUT_S,
        db_statement_timeout_s=STATEMENT_TIMEOUT_S,
    )
    return build(config, clock=ManualClock(T0))


def _charger(app: App, host_id: int) -> int:
    spec = ChargerSpec(
        CP, host_id, Point(51.45, -2.59), Tariff(30), (ConnectorSpec(1, ConnectorType.TYPE2, 7400),)
    )
    charger_id = app.marketplace.add_charger(spec).charger_id
    app.charging.boot(CP, V16)
    app.charging.status(CP, 1, ConnectorStatus.AVAILABLE)
    return charger_id


class Scene:
    """A host with a charger, the API in-process, and the charger's OCPP conversation (sans-I/O)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.host = accounts.host(app, "Hana")
        self.charger_id = _charger(app, self.host.hid)
        self.ocpp = Connection(V16, csms_v16.handlers(app.charging, CP, app.reports))
        self.frames = 0

    def status(self, status: str) -> CallResult | CallError:
        self.frames += 1
        reply = self.ocpp.receive(STATUS.format(n=self.frames, status=status)).reply
        assert reply is not None
        answer = parse(reply)
        assert isinstance(answer, CallResult | CallError)
        return answer

    def connector_status(self) -> ConnectorStatus:
        with self.app.store.reading() as tx:
            return tx.chargers.get(CP).connectors[0].status

    async def refused_while_locked(self) -> None:
        """Every request is answered "busy", not an error of ours, while the lock is held."""
        async with client(self.app) as http:
            answer = await http.patch(
                f"/host/chargers/{self.charger_id}", json={"title": "renamed"}, headers=self.host.headers
            )
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] == "database_busy" and answer.headers["Retry-After"] == "1"
        refused = self.status("Preparing")
        assert isinstance(refused, CallError) and refused.code == "InternalError"
        assert "busy" in refused.description

    async def served_once_released(self) -> None:
        async with client(self.app) as http:
            answer = await http.patch(
                f"/host/chargers/{self.charger_id}", json={"title": "renamed"}, headers=self.host.headers
            )
        assert answer.status_code == 200 and answer.json()["title"] == "renamed", answer.text
        assert isinstance(self.status("Preparing"), CallResult)
        assert self.connector_status() is ConnectorStatus.PREPARING


@pytest.fixture
def sqlite_scene(tmp_path: Path) -> Iterator[tuple[Scene, Path]]:
    path = tmp_path / "locks.db"
    app = _app(f"sqlite:///{path}")
    try:
        yield Scene(app), path
    finally:
        app.close()


async def test_a_sqlite_file_locked_by_another_writer_is_answered_busy_then_served(
    sqlite_scene: tuple[Scene, Path],
) -> None:
    scene, path = sqlite_scene
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process's write transaction, left open
        await scene.refused_while_locked()
        assert scene.connector_status() is ConnectorStatus.AVAILABLE  # readers still read (WAL)
    finally:
        other.execute("ROLLBACK")
        other.close()
    await scene.served_once_released()


@pytest.fixture
def pg_scene(postgres_url: str) -> Iterator[Scene]:
    app = _app(postgres_url)
    try:
        yield Scene(app)
    finally:
        app.close()


@pytest.mark.postgres
async def test_a_postgres_table_locked_elsewhere_is_answered_busy_then_served(
    pg_scene: Scene, postgres_url: str
) -> None:
    locker = create_engine(postgres_url)
    try:
        with locker.connect() as conn:
            conn.execute(text("LOCK TABLE chargers, connectors IN ACCESS EXCLUSIVE MODE"))
            await pg_scene.refused_while_locked()
            conn.rollback()
        await pg_scene.served_once_released()
    finally:
        locker.dispose()


@pytest.mark.postgres
async def test_a_postgres_row_locked_elsewhere_is_answered_busy_then_served(
    pg_scene: Scene, postgres_url: str
) -> None:
    locker = create_engine(postgres_url)
    try:
        with locker.connect() as conn:
            conn.execute(
                text("SELECT 1 FROM chargers WHERE id = :id FOR UPDATE"), {"id": pg_scene.charger_id}
            )
            conn.execute(
                text("SELECT 1 FROM connectors WHERE charger_id = :id FOR UPDATE"),
                {"id": pg_scene.charger_id},
            )
            await pg_scene.refused_while_locked()
            conn.rollback()
        await pg_scene.served_once_released()
    finally:
        locker.dispose()


@pytest.mark.postgres
def test_postgres_connections_keep_both_timeouts_after_a_migration_and_a_long_statement_is_busy(
    postgres_url: str,
) -> None:
    app = _app(postgres_url)  # building ran the migration, which sets and resets its own timeouts
    try:
        engine = sql_store(app).engine
        migrate.upgrade(engine)
        with engine.connect() as a, engine.connect() as b:  # the migration's connection is one of them
            for conn in (a, b):
                assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "200ms"
                assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "500ms"
        store = sql_store(app)
        with pytest.raises(DatabaseBusy, match="time limit"), store.transaction() as tx:
            tx.conn.exec_driver_sql("SELECT pg_sleep(10)")
        with store.transaction() as tx:  # the connection went back to the pool fit for use
            assert tx.conn.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        app.close()


def test_the_timeouts_are_configurable_and_checked() -> None:
    config = Config.from_env(
        {
            "CHARGESHARE_DB_LOCK_TIMEOUT_S": "2.5",
            "CHARGESHARE_DB_STATEMENT_TIMEOUT_S": "0",
            "CHARGESHARE_STRIPE_TIMEOUT_S": "4",
            "CHARGESHARE_STRIPE_RETRIES": "1",
        }
    )
    assert (config.db_lock_timeout_s, config.db_statement_timeout_s) == (2.5, 0.0)
    assert (config.stripe_timeout_s, config.stripe_max_network_retries) == (4.0, 1)
    defaults = Config.from_env({})
    assert (defaults.db_lock_timeout_s, defaults.db_statement_timeout_s) == (5.0, 30.0)
    assert (defaults.stripe_timeout_s, defaults.stripe_max_network_retries) == (10.0, 0)
    for name, value in (
        ("CHARGESHARE_DB_LOCK_TIMEOUT_S", "0"),
        ("CHARGESHARE_DB_LOCK_TIMEOUT_S", "soon"),
        ("CHARGESHARE_DB_STATEMENT_TIMEOUT_S", "-1"),
        ("CHARGESHARE_STRIPE_TIMEOUT_S", "inf"),
        ("CHARGESHARE_STRIPE_RETRIES", "9"),
    ):
        with pytest.raises(ConfigError, match=name):
            Config.from_env({name: value})
