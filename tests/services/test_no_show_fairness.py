"""A driver is a no-show only if the connector was theirs to use: when another driver's session held
it during the arrival grace (an earlier driver overstaying, a charge an offline charger let through),
the booking still expires unused, but without the no-show fee, and the whole hold goes back."""

from __future__ import annotations

from datetime import timedelta

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App
from chargeshare.domain.booking import BookingStatus
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.invariants import check_store
from tests.conftest import add_charger

HOUR = timedelta(hours=1)


def settle(app: App) -> None:
    while app.settlement.process_due().done:
        pass


def fee_of(app: App, booking_id: int) -> tuple[BookingStatus, int]:
    with app.store.reading() as tx:
        b = tx.bookings.get(booking_id)
    return b.status, b.fee


def ann_charging_before_bobs_booking(app: App, clock: ManualClock) -> tuple[int, int]:
    """Ann's hour on CP1 begins now and she is charging; Bob's hour follows hers. Returns Bob's
    booking and Ann's session."""
    charger = add_charger(app)
    ann = app.marketplace.add_driver("Ann", "ANN").driver_id
    bob = app.marketplace.add_driver("Bob", "BOB").driver_id
    start = clock.now() + HOUR
    app.bookings.book(BookRequest(ann, charger, 1, 60, 10_000, starts_at=start))
    bobs = app.bookings.book(BookRequest(bob, charger, 1, 60, 10_000, starts_at=start + HOUR)).booking_id
    clock.advance(3600)
    return bobs, app.charging.start("CP1", 1, "ANN", 0, clock.now()).transaction_id


def test_no_fee_when_an_earlier_driver_overstayed_into_the_booking(app: App, clock: ManualClock) -> None:
    bobs, session = ann_charging_before_bobs_booking(app, clock)
    clock.advance(3600 + 20 * 60)  # Ann's car is still plugged in 20 minutes into Bob's booking
    app.charging.stop("CP1", session, 8_000, clock.now())
    assert app.bookings.expire_no_shows() == [bobs]  # Bob gave up: his grace is over
    assert fee_of(app, bobs) == (BookingStatus.EXPIRED, 0)
    settle(app)
    gateway = app.gateway
    assert isinstance(gateway, SimulatedGateway)
    assert gateway.open_authorisations() == {}  # Bob's hold released in full
    assert [r.name for r in check_store(app.store, app.config.rules, now=clock.now()) if not r.ok] == []


def test_a_free_connector_nobody_came_to_is_a_no_show_with_its_fee(app: App, clock: ManualClock) -> None:
    bobs, session = ann_charging_before_bobs_booking(app, clock)
    clock.advance(3600 - 60)  # Ann leaves a minute before Bob's start
    app.charging.stop("CP1", session, 8_000, clock.now())
    clock.advance(60 + 16 * 60)
    assert app.bookings.expire_no_shows() == [bobs]
    assert fee_of(app, bobs) == (BookingStatus.EXPIRED, app.config.rules.cancellation.no_show_fee)


def test_a_booking_on_an_offline_charger_waits_then_expires_without_a_fee(
    app: App, clock: ManualClock
) -> None:
    """The driver may be charging on the offline charger, its start queued there: the booking is not
    judged while the charger is away. Back in time, its replayed start finds the booking; never back,
    the booking expires once its period is over, with no fee, since nobody could tell."""
    charger = add_charger(app)
    add_charger(app, "CP2")
    bob = app.marketplace.add_driver("Bob", "BOB").driver_id
    ann = app.marketplace.add_driver("Ann", "ANN").driver_id
    start = clock.now() + HOUR
    bobs = app.bookings.book(BookRequest(bob, charger, 1, 60, 10_000, starts_at=start)).booking_id
    anns = app.bookings.book(BookRequest(ann, charger, 1, 60, 10_000, starts_at=start + HOUR)).booking_id
    app.charging.disconnected("CP1")  # its link closed
    clock.advance(3600 + 30 * 60)  # Bob's grace is long over; the charger is still away
    assert app.bookings.expire_no_shows() == []
    app.charging.heartbeat("CP1")  # back, and replays Bob's start, made as he arrived
    bob_start = app.charging.start("CP1", 1, "BOB", 0, start + timedelta(minutes=5))
    assert bob_start.transaction_id > 0
    app.charging.stop("CP1", bob_start.transaction_id, 3_000, start + timedelta(minutes=50))
    assert fee_of(app, bobs)[0] is BookingStatus.COMPLETED
    app.charging.disconnected("CP1")
    clock.advance(2 * 3600)  # Ann's period is over, the charger never came back
    assert app.bookings.expire_no_shows() == [anns]
    assert fee_of(app, anns) == (BookingStatus.EXPIRED, 0)


def test_a_simulations_end_expires_bookings_yet_to_start_without_a_fee(app: App, clock: ManualClock) -> None:
    # A run can end before a late booking's slot begins: its hold must not stay open, and its driver,
    # who could not have come yet, owes nothing. One already under way pays the no-show fee as ever.
    charger = add_charger(app)
    add_charger(app, "CP2")
    ann = app.marketplace.add_driver("Ann", "ANN").driver_id
    bob = app.marketplace.add_driver("Bob", "BOB").driver_id
    anns = app.bookings.book(BookRequest(ann, charger, 1, 60, 10_000)).booking_id
    bobs = app.bookings.book(
        BookRequest(bob, charger, 1, 60, 10_000, starts_at=clock.now() + 2 * HOUR)
    ).booking_id
    clock.advance(20 * 60)
    run = app.housekeeping.wind_down()
    assert run.counts["no_shows_expired"] == 2, run
    assert fee_of(app, bobs) == (BookingStatus.EXPIRED, 0)
    status, fee = fee_of(app, anns)
    assert status is BookingStatus.EXPIRED and fee > 0
    settle(app)
    gateway = app.gateway
    assert isinstance(gateway, SimulatedGateway)
    assert gateway.open_authorisations() == {}
    assert [r.name for r in check_store(app.store, app.config.rules, now=clock.now()) if not r.ok] == []
