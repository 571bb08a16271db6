"""What the database says a charger was asked and never answered: reservations still "sent" and stops
still due, found per charger so they can be sent again when it connects (to any server process)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.errors import NotFound
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import EnergyLimitReached, ReservationDue
from chargeshare.services.owed_commands import due_at_connect
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


def test_a_reservation_that_got_no_answer_is_asked_again_at_the_next_sweep(
    app: App, clock: ManualClock
) -> None:
    charger = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    starts = clock.now() + timedelta(minutes=60)  # beyond the lead: the sweep asks for it later
    booking = app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000, starts_at=starts))
    clock.advance(50 * 60)
    assert app.bookings.reservations_due() == [booking.booking_id]  # now "sent"
    assert app.bookings.reservations_due() == []  # asked once while it waits for the answer
    assert app.bookings.reservation_unanswered(booking.booking_id)  # no process could carry it
    assert app.bookings.reservations_due() == [booking.booking_id]  # asked again
    app.bookings.reservation_answered(booking.booking_id, "Accepted")
    assert not app.bookings.reservation_unanswered(booking.booking_id)  # answered: left alone
    app.bookings.cancel(booking.booking_id, driver_id=driver)
    assert not app.bookings.reservation_unanswered(booking.booking_id)


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


def test_a_reservation_accepted_for_a_booking_cancelled_meanwhile_is_to_be_cancelled(
    app: App, clock: ManualClock
) -> None:
    """The cancellation's CancelReservation may overtake the ReserveNow (two processes, two routes):
    the charger then holds a reservation for nothing, so its late Accepted asks for another cancel,
    and until one is answered the reservation stays due a cancel on connecting."""
    charger = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    starts = clock.now() + timedelta(minutes=5)
    booking = app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000, starts_at=starts))
    app.bookings.cancel(booking.booking_id, driver_id=driver)
    (due,) = app.bookings.cancellations_unanswered("CP1")  # "sent": it may hold it
    assert (due.booking_id, due.reservation) == (booking.booking_id, "sent")
    app.bookings.reservation_cancelled(booking.booking_id)  # the cancel answered (it had none yet)
    assert app.bookings.cancellations_unanswered("CP1") == []
    assert app.bookings.reservation_answered(booking.booking_id, "Accepted")  # then the ReserveNow
    (due,) = app.bookings.cancellations_unanswered("CP1")
    assert due.reservation == "accepted"
    app.bookings.reservation_cancelled(booking.booking_id)
    assert app.bookings.cancellations_unanswered("CP1") == []
    assert not app.bookings.reservation_answered(booking.booking_id, "Rejected")
    assert app.bookings.cancellations_unanswered("CP1") == []


def test_a_started_session_takes_its_reservation_up(app: App, clock: ManualClock) -> None:
    """The charger ends a reservation when its driver starts on it: nothing is left to cancel."""
    charger = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    booking = app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000)).booking_id
    app.bookings.reservation_answered(booking, "Accepted")
    tx_id = app.charging.start("CP1", 1, "TAG", 0, clock.now()).transaction_id
    app.charging.stop("CP1", tx_id, 1_000, clock.now())
    with app.store.reading() as tx:
        assert tx.bookings.get(booking).reservation == "none"
    assert app.bookings.cancellations_unanswered("CP1") == []


def test_an_expired_bookings_reservation_unanswered_is_cancelled_on_connecting(
    app: App, clock: ManualClock
) -> None:
    charger = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    booking = app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000)).booking_id
    app.bookings.reservation_answered(booking, "Accepted")
    assert app.bookings.expire_no_shows(grace=timedelta(0)) == [booking]  # no charger link to tell
    (due,) = app.bookings.cancellations_unanswered("CP1")
    assert (due.booking_id, due.status, due.reservation) == (booking, "expired", "accepted")
    app.bookings.reservation_cancelled(booking)
    assert app.bookings.cancellations_unanswered("CP1") == []


def test_a_reservation_accepted_for_a_booking_expired_meanwhile_is_cancelled_at_once(
    app: App, clock: ManualClock
) -> None:
    """The no-show sweep may expire a booking while its ReserveNow is on the wire: the charger's late
    Accepted means it now holds a reservation for nobody, turning other drivers away, so the answer
    itself asks for the cancel rather than leaving it to the next round of owed commands."""
    charger = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    booking = app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000)).booking_id
    assert app.bookings.expire_no_shows(grace=timedelta(0)) == [booking]  # ReserveNow still "sent"
    assert app.bookings.reservation_answered(booking, "Accepted")
    (due,) = app.bookings.cancellations_unanswered("CP1")
    assert (due.booking_id, due.status, due.reservation) == (booking, "expired", "accepted")
    app.bookings.reservation_cancelled(booking)
    assert app.bookings.cancellations_unanswered("CP1") == []


def test_what_a_charger_is_owed_at_connect_is_read_at_once_as_each_service_says(
    app: App, clock: ManualClock
) -> None:
    charger = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    soon = BookRequest(driver, charger, 1, 60, 5_000, starts_at=clock.now() + timedelta(minutes=5))
    app.bookings.cancel(app.bookings.book(soon).booking_id, driver_id=driver)  # its reservation "sent"
    app.bookings.book(BookRequest(driver, charger, 1, 60, 5_000))
    tx_id = app.charging.start("CP1", 1, "TAG", 1_000, clock.now()).transaction_id
    app.charging.meter("CP1", tx_id, 6_000)  # a stop owed
    units = 0
    reading = app.store.reading

    def counted() -> Any:
        nonlocal units
        units += 1
        return reading()

    app.store.reading = counted  # type: ignore[method-assign]
    dues = due_at_connect(app.store, app.bookings, app.charging, app.smart, app.v2g, "CP1")
    assert units == 1
    app.store.reading = reading  # type: ignore[method-assign]
    separately = (
        app.bookings.reservations_unanswered("CP1"),
        app.bookings.cancellations_unanswered("CP1"),
        app.charging.stops_due("CP1"),
        app.smart.overrides_due("CP1"),
        app.v2g.exports_due("CP1"),
    )
    assert dues == separately and dues[1] and dues[2]  # a cancel and a stop owed
    with pytest.raises(NotFound):
        due_at_connect(app.store, app.bookings, app.charging, app.smart, app.v2g, "NOPE")
