"""The sweep asking a charger to reserve a booking's connector, racing the booking's end in another
process on PostgreSQL: no ReserveNow ever goes out for a booking that has ended, whichever commits
first (a stray reservation would hold the connector for nobody, and the next booking's ReserveNow
would be answered Reserved, failing it)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from chargeshare.bootstrap import App
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import ReservationDue
from tests.conftest import add_charger
from tests.integration.pausing import PausesAfter, PausesBeforeCommit
from tests.integration.test_command_refusal_race import second_while_first_uncommitted

pytestmark = pytest.mark.postgres


def booking_coming_due(app: App, clock: ManualClock) -> tuple[int, int, list[ReservationDue]]:
    """A confirmed booking the next sweep would ask its charger to reserve; the ReserveNows asked."""
    charger = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    starts = clock.now() + timedelta(minutes=60)  # beyond the lead: the sweep asks for it later
    booking = app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000, starts_at=starts))
    assert booking.reservation == "none"
    clock.advance(50 * 60)
    asked: list[ReservationDue] = []
    app.bus.subscribe(ReservationDue, asked.append)
    return booking.booking_id, driver, asked


def canceller(app: App, booking_id: int, driver: int) -> Callable[[], object]:
    def cancel() -> object:
        return app.bookings.cancel(booking_id, driver_id=driver)

    return cancel


def ended_without_a_reservation(app: App, booking_id: int, asked: list[ReservationDue]) -> None:
    with app.store.reading() as tx:
        booking = tx.bookings.get(booking_id)
    assert booking.status.value == "cancelled"
    assert [a.booking_id for a in asked] == [], "a ReserveNow went out for a cancelled booking"
    assert booking.reservation == "none"


def test_a_cancel_committed_after_the_sweep_read_sends_no_reservation(
    pg_app: App, clock: ManualClock, postgres_url: str
) -> None:
    booking_id, driver, asked = booking_coming_due(pg_app, clock)
    # The sweep has read the booking confirmed and unreserved; the cancel commits before it asks.
    store = PausesAfter(pg_app.store, lambda: False, "chargers", "connector_statuses")
    pg_app.bookings.store = store
    swept, _ = second_while_first_uncommitted(
        store, postgres_url, pg_app.bookings.reservations_due, canceller(pg_app, booking_id, driver)
    )
    pg_app.bookings.store = store.inner
    assert swept == []
    ended_without_a_reservation(pg_app, booking_id, asked)


def test_a_cancel_committing_while_the_sweep_waits_on_its_row_sends_no_reservation(
    pg_app: App, clock: ManualClock, postgres_url: str
) -> None:
    booking_id, driver, asked = booking_coming_due(pg_app, clock)
    # The cancel holds the booking's row uncommitted; the sweep reads it confirmed and waits to ask.
    store = PausesBeforeCommit(pg_app.store, lambda: False)
    pg_app.bookings.store = store
    second_while_first_uncommitted(
        store, postgres_url, canceller(pg_app, booking_id, driver), pg_app.bookings.reservations_due
    )
    pg_app.bookings.store = store.inner
    ended_without_a_reservation(pg_app, booking_id, asked)
