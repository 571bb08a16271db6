"""The DES day's and the sweep's hot session lookups read SQLite's partial indexes of open sessions,
whatever the table holds: their cost follows the open sessions (the sweep's, those of them reported
free), not every session ever held."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.dialects import sqlite

from chargeshare.adapters.sql import sessions
from chargeshare.adapters.sql.direct import DirectStatement
from chargeshare.adapters.sql.schema import OPEN_SESSION
from chargeshare.bootstrap import App, Config
from chargeshare.services.clock import ManualClock
from tests.conftest import build_for_tests, sql_store

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
