"""A connector's decided limit with the steps it takes later (flexibility events' edges), stored on
SQLite and PostgreSQL as on the in-memory store: read back in time order, replaced by a decision
without them, and gone with the limit or the charger."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.grid_limits import Plan
from chargeshare.services.clock import ManualClock
from tests.conftest import T0, add_charger


def connector_of(app: App, cp_id: str) -> int:
    charger = add_charger(app, cp_id, online=False)
    with app.store.reading() as tx:
        return tx.chargers.by_id(charger).connectors[0].connector_id


def keeps_steps(app: App) -> None:
    a, b = connector_of(app, "CP1"), connector_of(app, "CP2")
    edge, later = T0 + timedelta(minutes=3, microseconds=250), T0 + timedelta(minutes=4)
    with app.store.transaction() as tx:
        tx.grid.save_allocations(
            {a: 4_000, b: 3_000}, T0, {a: [(later, 5_000), (edge, 1_380)], b: [(later, 2_000)]}
        )
    with app.store.reading() as tx:
        assert tx.grid.allocations() == {a: 4_000, b: 3_000}
        assert tx.grid.plans() == {
            a: Plan(4_000, ((edge, 1_380), (later, 5_000))),
            b: Plan(3_000, ((later, 2_000),)),
        }
    with app.store.transaction() as tx:
        tx.grid.save_allocations({a: 1_380}, edge, {a: [(later, 5_000)]})
    with app.store.reading() as tx:
        assert tx.grid.plans() == {a: Plan(1_380, ((later, 5_000),)), b: Plan(3_000, ((later, 2_000),))}
    with app.store.transaction() as tx:
        tx.grid.save_allocations({a: 1_380, b: None}, edge, {})
    with app.store.reading() as tx:
        assert tx.grid.plans() == {a: Plan(1_380)}
    with app.store.transaction() as tx:
        tx.grid.save_allocations({a: 1_380}, edge, {a: [(later, 5_000)]})
        tx.chargers.remove("CP1")
    with app.store.reading() as tx:
        assert tx.grid.allocations() == {} and tx.grid.plans() == {}


def test_steps_are_kept_on_sqlite(app: App) -> None:
    keeps_steps(app)


def test_steps_are_kept_on_the_in_memory_store(clock: ManualClock) -> None:
    app = build(Config(database_url="memory://"), clock=clock)
    try:
        keeps_steps(app)
    finally:
        app.close()


@pytest.mark.postgres
def test_steps_are_kept_on_postgresql(pg_app: App) -> None:
    keeps_steps(pg_app)
