"""Two processes deciding a connector's grid limit at once on PostgreSQL: the second waits on the
first's row and its decision stands, instead of failing on the connector's key."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from chargeshare.adapters.sql.grid import SqlGrid
from chargeshare.bootstrap import App
from tests.conftest import T0, add_charger, sql_store

pytestmark = pytest.mark.postgres

WAIT_S = 30.0


def waiting_on_a_lock_or_done(app: App, second: threading.Thread) -> None:
    deadline = time.monotonic() + WAIT_S
    with sql_store(app).engine.connect() as probe:
        while second.is_alive():
            waiting = probe.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            probe.rollback()
            if waiting:
                return
            assert time.monotonic() < deadline, "the second decision neither finished nor waited"
            time.sleep(0.01)


def test_the_later_of_two_concurrent_decisions_stands(pg_app: App) -> None:
    charger = add_charger(pg_app, "CP1", online=False)
    with pg_app.store.reading() as tx:
        (connector,) = [c.connector_id for c in tx.chargers.by_id(charger).connectors]
    engine = sql_store(pg_app).engine
    failures: list[BaseException] = []

    def decide_second() -> None:
        try:
            with engine.begin() as conn:
                SqlGrid(conn, "postgresql").save_allocations({connector: 2_000}, T0)
        except BaseException as exc:
            failures.append(exc)

    second = threading.Thread(target=decide_second)
    with engine.begin() as conn:
        SqlGrid(conn, "postgresql").save_allocations({connector: 1_000}, T0)
        second.start()
        waiting_on_a_lock_or_done(pg_app, second)
    second.join(WAIT_S)
    assert not second.is_alive() and failures == []
    with pg_app.store.reading() as tx:
        assert tx.grid.allocations() == {connector: 2_000}


def test_an_acknowledgement_during_a_decision_waits_its_turn_instead_of_deadlocking(pg_app: App) -> None:
    """An acknowledgement writes the charger's delivery and its connectors' `held_w`; a decision
    writes the connectors' limits and then the delivery. In opposite orders they would deadlock."""
    charger = add_charger(pg_app, "CP1", online=False)
    with pg_app.store.reading() as tx:
        (connector,) = [c.connector_id for c in tx.chargers.by_id(charger).connectors]
    with pg_app.store.transaction() as tx:
        tx.grid.save_allocations({connector: 4_000}, T0)
        tx.grid.owe([charger], T0)
    engine = sql_store(pg_app).engine
    failures: list[BaseException] = []

    def acknowledge() -> None:
        try:
            with engine.begin() as conn:
                SqlGrid(conn, "postgresql").delivered(charger, 1, T0)
        except BaseException as exc:
            failures.append(exc)

    ack = threading.Thread(target=acknowledge)
    with engine.begin() as conn:
        grid = SqlGrid(conn, "postgresql")
        grid.deciding()
        grid.save_allocations({connector: 3_000}, T0)
        ack.start()
        waiting_on_a_lock_or_done(pg_app, ack)
        grid.owe([charger], T0)
    ack.join(WAIT_S)
    assert not ack.is_alive() and failures == []
    with pg_app.store.reading() as tx:
        assert tx.grid.delivery(charger) == (2, 1)  # the older decision acknowledged, the newer owed
        assert tx.grid.held() == {}  # never all acknowledged: what it may hold is not known
