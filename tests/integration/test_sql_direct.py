"""Every statement the store runs straight on the driver gives what `Connection.execute` gives:
the same rows (converted back the same way: aware datetimes, booleans, floats) and the same row
counts, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from chargeshare.adapters import sql_store
from chargeshare.adapters.sql_direct import DirectStatement
from chargeshare.bootstrap import App, Config, build
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from tests.conftest import add_charger

DIRECT = {name: v for name, v in vars(sql_store).items() if isinstance(v, DirectStatement)}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[tuple[App, dict[str, Any]]]:
    url = "sqlite://" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    app = build(Config(database_url=url, locks_enabled=False), clock=clock)
    charger = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG1").driver_id
    booking = app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000)).booking_id
    clock.advance(60)
    session = app.charging.start("CP1", 1, "TAG1", 1_000, clock.now()).transaction_id
    # A later booking on the same connector, still only confirmed: what a start looks for.
    later = BookRequest(driver, charger, 1, 60, 10_000, starts_at=clock.now() + timedelta(hours=3))
    app.bookings.book(later)
    with app.store.transaction() as tx:
        connector = tx.charger("CP1").connectors[0].connector_id
        tx.enqueue_payment(booking, "capture", 100, "test-capture", clock.now())
    values = {
        "cp_id": "CP1",
        "seen_at": clock.now(),
        "charger_pk": charger,
        "new_status": "Charging",
        "no": 1,
        "tag": "TAG1",
        "booking_pk": booking,
        "connector_pk": connector,
        "driver_pk": driver,
        "at": clock.now(),
        "session_pk": session,
        "reading": 2_500,
        "since": clock.now() - timedelta(minutes=5),
        "before": clock.now() + timedelta(hours=1),
        "now": clock.now() + timedelta(days=1),
        "most": 10,
    }
    yield app, values
    app.close()


def both_ways(app: App, direct: DirectStatement, values: dict[str, Any]) -> tuple[Any, Any]:
    """The statement through SQLAlchemy and straight on the driver, each in a rolled-back transaction."""
    out = []
    for straight in (False, True):
        conn = app.store.engine.connect()
        try:
            with conn.begin() as tx:
                names = direct.compiled(conn.dialect).keys
                if names:
                    if straight:
                        got: Any = direct.rows(conn, values)
                    else:
                        got = [tuple(r) for r in conn.execute(direct.stmt, values)]
                elif straight:
                    got = direct.write(conn, values)
                else:
                    got = conn.execute(direct.stmt, values).rowcount
                tx.rollback()
        finally:
            conn.close()
        out.append(got)
    return out[0], out[1]


def test_every_direct_statement_is_covered_here() -> None:
    assert len(DIRECT) >= 15, sorted(DIRECT)


@pytest.mark.parametrize("name", sorted(DIRECT))
def test_direct_statement_matches_sqlalchemy(world: tuple[App, dict[str, Any]], name: str) -> None:
    app, values = world
    via_sqlalchemy, via_driver = both_ways(app, DIRECT[name], values)
    assert via_driver == via_sqlalchemy
    # Not vacuous: each statement finds or touches something in this world.
    assert via_driver not in ([], 0), f"{name} matched nothing; the comparison proves little"
    if isinstance(via_driver, list):
        assert [type(v) for v in via_driver[0]] == [type(v) for v in via_sqlalchemy[0]]
