"""What the database says a charger was asked and never answered: reservations still "sent" and stops
still due, found per charger so they can be sent again when it connects (to any server process)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.errors import NotFound
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import EnergyLimitReached, ReservationDue
from tests.conftest import add_charger


def test_a_reservation_sent_and_never_answered_is_due_again(app: App, clock: ManualClock) -> None:
    charger = add_charger(app)
    add_charger(app, "CP2")
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    starts = clock.now() + timedelta(minutes=5)
    booking = app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000, starts_at=starts))
    assert booking.reservation == "sent"  # decided; no charger link here to send it on
    (due,) = app.bookings.reservations_unanswered("CP1")
    grace = timedelta(minutes=app.config.rules.cancellation.no_show_grace_minutes)
    assert due == ReservationDue(clock.now(), booking.booking_id, "CP1", 1, "TAG", starts + grace)
    assert app.bookings.reservations_unanswered("CP2") == []
    app.bookings.reservation_answered(booking.booking_id, "Accepted")
    assert app.bookings.reservations_unanswered("CP1") == []
    with pytest.raises(NotFound):
        app.bookings.reservations_unanswered("NOPE")


def test_a_session_over_its_energy_limit_is_due_a_stop_until_it_stops(app: App, clock: ManualClock) -> None:
    charger = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    app.bookings.book(BookRequest(driver, charger, 1, 60, 5_000))
    tx_id = app.charging.start("CP1", 1, "TAG", 1_000, clock.now()).transaction_id
    app.charging.meter("CP1", tx_id, 5_999)
    assert app.charging.stops_due("CP1") == []
    app.charging.meter("CP1", tx_id, 6_000)
    assert app.charging.stops_due("CP1") == [EnergyLimitReached(clock.now(), "CP1", tx_id)]
    app.charging.stop("CP1", tx_id, 6_100, clock.now())
    assert app.charging.stops_due("CP1") == []
