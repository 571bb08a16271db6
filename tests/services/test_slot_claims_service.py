"""Bookings with slot claims in front of the store (the default with locks on): a claim refuses
only while its booking holds the slot, so a slot the store frees can be booked again at once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.adapters.redis_slot_claims import MemorySlotClaims
from chargeshare.bootstrap import App
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.errors import BookingConflict, PaymentDeclined
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.events import BookingConfirmed
from tests.conftest import add_charger


@pytest.fixture
def ready(app: App) -> tuple[int, int, int]:
    assert isinstance(app.bookings.claims, MemorySlotClaims)  # claims are on by default
    charger = add_charger(app, price=40)
    first = app.marketplace.add_driver("D1", "TAG1").driver_id
    second = app.marketplace.add_driver("D2", "TAG2").driver_id
    return charger, first, second


def test_a_cancelled_booking_frees_its_slot_at_once(app: App, ready: tuple[int, int, int]) -> None:
    charger, first, second = ready
    booked = app.bookings.book(BookRequest(first, charger, 1, 60, 10_000))
    with pytest.raises(BookingConflict):
        app.bookings.book(BookRequest(second, charger, 1, 60, 10_000))
    app.bookings.cancel(booked.booking_id, driver_id=first)
    assert app.bookings.book(BookRequest(second, charger, 1, 60, 10_000)).status is BookingStatus.CONFIRMED


def test_a_declined_booking_leaves_no_claim(app: App, ready: tuple[int, int, int]) -> None:
    charger, first, second = ready
    gateway = app.gateway
    assert isinstance(gateway, SimulatedGateway)
    gateway.decline_customers.add(f"driver:{first}")
    with pytest.raises(PaymentDeclined):
        app.bookings.book(BookRequest(first, charger, 1, 60, 10_000))
    assert app.bookings.book(BookRequest(second, charger, 1, 60, 10_000)).status is BookingStatus.CONFIRMED


def test_a_session_stopped_early_frees_the_rest_of_its_period(
    app: App, clock: ManualClock, ready: tuple[int, int, int]
) -> None:
    charger, first, second = ready
    # Claims that would hold past the session: only its end may free the slot.
    app.bookings.claims = MemorySlotClaims(pending_ms=30_000, placing_ms=120_000, held_ms=24 * 3600 * 1000)
    booked = app.bookings.book(BookRequest(first, charger, 1, 120, 10_000))
    clock.advance(60)
    tx_id = app.charging.start("CP1", 1, "TAG1", 1_000, clock.now()).transaction_id
    clock.advance(20 * 60)
    app.charging.stop("CP1", tx_id, 6_000, clock.now())
    with app.store.reading() as tx:
        assert tx.bookings.get(booked.booking_id).status is BookingStatus.COMPLETED
    later = clock.now() + timedelta(minutes=20)
    rest = BookRequest(second, charger, 1, 30, 10_000, starts_at=later)
    assert app.bookings.book(rest).status is BookingStatus.CONFIRMED


def test_a_booking_ended_before_its_claim_was_confirmed_leaves_no_claim(
    app: App, ready: tuple[int, int, int]
) -> None:
    """Its host cancels it (or its charger refuses the reservation) the moment it is confirmed, while
    the request that made it has still to confirm its claim: the claim must not outlive it."""
    charger, first, second = ready
    with app.store.reading() as tx:
        host = tx.chargers.by_id(charger).host_id

    def cancel_at_once(e: BookingConfirmed) -> None:
        if e.driver_id == first:
            app.bookings.cancel(e.booking_id, host_id=host)

    app.bus.subscribe(BookingConfirmed, cancel_at_once)
    booked = app.bookings.book(BookRequest(first, charger, 1, 60, 10_000))
    with app.store.reading() as tx:
        assert tx.bookings.get(booked.booking_id).status is BookingStatus.CANCELLED
    assert app.bookings.book(BookRequest(second, charger, 1, 60, 10_000)).status is BookingStatus.CONFIRMED
