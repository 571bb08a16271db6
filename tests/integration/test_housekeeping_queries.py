"""The housekeeping sweep's narrow queries pick exactly what a full read filtered in Python would,
on SQLite and on PostgreSQL, and the indexes behind them exist on both."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, inspect

from chargeshare.adapters.sql import schema as t
from chargeshare.bootstrap import App, Config
from chargeshare.domain.booking import BookingStatus
from tests.conftest import add_charger, build_for_tests, sql_store

T = datetime(2026, 5, 1, 9, tzinfo=UTC)
STATUSES = ("requested", "confirmed", "active", "cancelled", "expired")
RESERVATIONS = ("none", "sent", "accepted")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_app(request: pytest.FixtureRequest) -> Iterator[App]:
    url = "sqlite://" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    app = build_for_tests(Config(database_url=url))
    yield app
    app.close()


def _fill(app: App) -> None:
    """Bookings of every status and reservation state, starting on a minute grid around T (one
    connector each, so no two overlap), and outbox items of each status across two bookings."""
    driver = app.marketplace.add_driver("D", "D").driver_id
    rows = []
    for i in range(30):
        add_charger(app, f"CP{i}", online=False)
        starts = T + timedelta(minutes=(i % 10) * 5 - 20, microseconds=i % 3)
        rows.append(
            dict(
                driver_id=driver,
                connector_id=i + 1,
                starts_at=starts,
                ends_at=starts + timedelta(hours=1),
                status=STATUSES[i % len(STATUSES)],
                max_energy_wh=1,
                price_per_kwh=1,
                hold_amount=1,
                created_at=T,
                fee=0,
                reservation=RESERVATIONS[i % len(RESERVATIONS)],
            )
        )
    with sql_store(app).engine.begin() as conn:
        conn.execute(insert(t.bookings), rows)
    with app.store.transaction() as tx:
        for n, status in enumerate(("pending", "done", "pending", "dead", "pending")):
            booking_id = 1 + n % 2
            tx.outbox.enqueue(booking_id, f"s{n}", 1, f"k{n}", T)
            if status != "pending":
                item = tx.outbox.get(f"k{n}")
                assert item is not None
                assert tx.outbox.update(
                    item.item_id,
                    expected="pending",
                    expected_attempts=0,
                    now=T,
                    status=status,
                    attempts=1,
                    next_attempt_at=T,
                    last_error=None,
                )


def test_bookings_starting_by_match_the_full_read(store_app: App) -> None:
    _fill(store_app)
    with store_app.store.transaction() as tx:
        everything = tx.bookings.all()
        for status in (BookingStatus.CONFIRMED, BookingStatus.ACTIVE):
            for offset_s in (-1800, -600, -300, 0, 1, 300, 3600):
                by = T + timedelta(seconds=offset_s)
                want = [b for b in everything if b.status is status and b.starts_at <= by]
                assert tx.bookings.starting_by(status, by) == want
                for r in RESERVATIONS:
                    assert tx.bookings.starting_by(status, by, reservation=r) == [
                        b for b in want if b.reservation == r
                    ]


def test_pending_payments_of_one_booking(store_app: App) -> None:
    _fill(store_app)
    with store_app.store.transaction() as tx:
        for booking_id in (1, 2, 3):
            want = [i for i in tx.outbox.all("pending") if i.booking_id == booking_id]
            assert tx.outbox.pending_of(booking_id) == want
        assert [i.idempotency_key for i in tx.outbox.pending_of(1)] == ["k0", "k2", "k4"]


def test_the_sweeps_indexes_exist(store_app: App) -> None:
    store_app.store.create_schema()  # idempotent
    names = {
        ix["name"]
        for table in ("bookings", "chargers")
        for ix in inspect(sql_store(store_app).engine).get_indexes(table)
    }
    assert {"ix_bookings_status_start", "ix_chargers_status_seen"} <= names
