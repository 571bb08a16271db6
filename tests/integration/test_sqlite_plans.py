"""The DES day's and the sweep's hot session lookups read SQLite's partial indexes of open sessions,
whatever the table holds: their cost follows the open sessions (the sweep's, those of them reported
free), not every session ever held. A charger's bookings are read through its connectors, not every
booking in the states asked for; a host's from the host's chargers, a driver's from the driver's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.dialects import sqlite

from chargeshare.adapters.sql import sessions, statements
from chargeshare.adapters.sql.direct import DirectStatement
from chargeshare.adapters.sql.schema import OPEN_SESSION
from chargeshare.bootstrap import App, Config
from chargeshare.domain.booking import BookingStatus
from chargeshare.services.clock import ManualClock
from chargeshare.services.ports import UnitOfWork
from tests.conftest import build_for_tests, sql_store
from tests.contract.test_repositories import a_charger

OPEN_INDEX = "ix_sessions_open"
FREED_INDEX = "ix_sessions_freed"


@pytest.fixture
def app(clock: ManualClock) -> Iterator[App]:
    app = build_for_tests(Config(database_url="sqlite://", locks_enabled=False), clock=clock)
    yield app
    app.close()


def plan(app: App, statement: DirectStatement, values: dict[str, Any]) -> list[str]:
    with sql_store(app).transaction() as tx:
        compiled = statement.compiled(tx.conn.dialect)
        raw: Any = tx.conn.connection.dbapi_connection
        rows = raw.execute(f"EXPLAIN QUERY PLAN {compiled.sql}", compiled.parameters(values)).fetchall()
    return [str(r[3]) for r in rows]


def test_lost_stop_lookup_searches_the_freed_open_sessions_index(app: App, clock: ManualClock) -> None:
    steps = plan(app, sessions.FREED_BEFORE, {"cutoff": clock.now()})
    assert any(step.startswith(f"SEARCH sessions USING INDEX {FREED_INDEX}") for step in steps), steps
    assert not any(step == "SCAN sessions" for step in steps), steps


def test_open_session_lookup_names_the_index_predicate_itself() -> None:
    # Bound, the status would match the partial index too, but SQLite would then prepare the
    # statement again at every execution (its plan depending on the value bound).
    sql = sessions.OPEN_ON.compiled(sqlite.dialect()).sql
    assert f"sessions.{OPEN_SESSION}" in sql
    assert sessions.OPEN_ON.compiled(sqlite.dialect()).order == ("connector_pk",)


def plan_of_bookings_read(app: App, read: Callable[[UnitOfWork], object]) -> list[str]:
    """The plan of the one bookings statement `read` runs, as SQLite would run it."""
    store = sql_store(app)
    ran: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        ran.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", keep)
    try:
        with store.transaction() as tx:
            read(tx)
    finally:
        event.remove(store.engine, "before_cursor_execute", keep)
    ((sql, parameters),) = [(s, p) for s, p in ran if "FROM bookings" in s]
    with store.transaction() as tx:
        raw: Any = tx.conn.connection.dbapi_connection
        return [str(r[3]) for r in raw.execute(f"EXPLAIN QUERY PLAN {sql}", parameters).fetchall()]


def test_a_chargers_bookings_are_read_through_its_connectors(app: App) -> None:
    # Without statistics (SQLite keeps none here), the status index looks as good as the connector
    # one, and a connect or disconnect would read every confirmed or active booking of the fleet.
    with sql_store(app).transaction() as tx:
        charger_id, _ = a_charger(tx)
    live = {BookingStatus.CONFIRMED, BookingStatus.ACTIVE}
    steps = plan_of_bookings_read(app, lambda tx: tx.bookings.on_charger(charger_id, live))
    assert any("ix_bookings_connector_period" in step for step in steps), steps


def test_a_hosts_bookings_are_read_from_the_hosts_chargers(app: App) -> None:
    # Else SQLite walks every booking in id order (to spare the sort) and joins each to its charger
    # to find the host's: a host's listing would cost the whole fleet's history.
    steps = plan_of_bookings_read(app, lambda tx: tx.bookings.of(host_id=1))
    assert steps[0].startswith("SEARCH chargers USING COVERING INDEX ix_chargers_host_id"), steps
    assert any("bookings USING INDEX ix_bookings_connector_period" in step for step in steps), steps
    assert not any(step.startswith("SCAN") for step in steps), steps


def test_a_drivers_bookings_are_read_from_the_drivers_index(app: App) -> None:
    steps = plan_of_bookings_read(app, lambda tx: tx.bookings.of(driver_id=1))
    assert steps[0].startswith("SEARCH bookings USING INDEX ix_bookings_driver_id"), steps
    assert not any(step.startswith("SCAN") for step in steps), steps


def test_reservations_owed_at_connect_are_read_through_the_chargers_connectors(app: App) -> None:
    # Asked for cancelled and expired ones too, at every connect: by status, the fleet's history.
    params = {"charger_pk": 1, "booking_status": "cancelled", "reservation_state": "sent"}
    steps = plan(app, statements.ALL["bookings.reservations_on"], params)
    assert any("ix_bookings_connector_period" in step for step in steps), steps
