"""The services over a real SQLite store: booking, charging, settlement, and what the invariants see."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, update

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.adapters.sql import schema as t
from chargeshare.bootstrap import App
from chargeshare.domain.availability import WeeklyWindow
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.charger import ConnectorStatus
from chargeshare.domain.errors import (
    BookingConflict,
    ChargerUnavailable,
    InvalidRequest,
    NotFound,
    PaymentDeclined,
)
from chargeshare.ocpp import V16
from chargeshare.services.booking import BookRequest
from chargeshare.services.charging import AuthStatus
from chargeshare.services.clock import ManualClock
from chargeshare.services.invariants import check_store
from tests.conftest import add_charger, sql_store


def failing(app: App) -> set[str]:
    return {r.name for r in check_store(app.store, app.config.rules, now=app.clock.now()) if not r.ok}


def book(app: App, charger_id: int, driver_id: int, minutes: int = 60, wh: int = 10_000) -> int:
    return app.bookings.book(BookRequest(driver_id, charger_id, 1, minutes, wh)).booking_id


def charge(app: App, clock: ManualClock, tag: str, start: int, stop: int) -> int:
    clock.advance(60)
    r = app.charging.start("CP1", 1, tag, start, clock.now())
    assert r.status is AuthStatus.ACCEPTED
    clock.advance(600)
    app.charging.meter("CP1", r.transaction_id, (start + stop) // 2)
    clock.advance(600)
    assert app.charging.stop("CP1", r.transaction_id, stop, clock.now()) is AuthStatus.ACCEPTED
    return r.transaction_id


def test_full_loop_bills_exactly_once(app: App, clock: ManualClock) -> None:
    charger = add_charger(app, price=35)
    driver = app.marketplace.add_driver("D", "TAG1")
    app.charging.boot("CP1", V16)
    booking_id = book(app, charger, driver.driver_id)
    tx = charge(app, clock, "TAG1", 1_000, 8_777)
    # a retried stop and a replayed start change nothing
    assert app.charging.stop("CP1", tx, 8_777, clock.now()) is AuthStatus.ACCEPTED
    assert isinstance(app.gateway, SimulatedGateway)
    assert app.gateway.total_captured == 272  # 7.777 kWh x 35p = 272.195 -> 272p
    with app.store.transaction() as t_:
        b = t_.bookings.get(booking_id)
        s = t_.sessions.get(tx)
    assert b.status is BookingStatus.COMPLETED and b.ends_at == clock.now()
    assert s is not None and s.billed_wh == 7_777 and s.cost == 272
    assert failing(app) == set()


def test_overlapping_booking_is_a_conflict_and_touching_is_not(app: App, clock: ManualClock) -> None:
    charger = add_charger(app)
    d1 = app.marketplace.add_driver("A", "A").driver_id
    d2 = app.marketplace.add_driver("B", "B").driver_id
    book(app, charger, d1, minutes=60)
    with pytest.raises(BookingConflict):
        book(app, charger, d2, minutes=30)
    later = clock.now() + timedelta(minutes=60)
    app.bookings.book(BookRequest(d2, charger, 1, 30, 5_000, starts_at=later))
    assert failing(app) == {"every_hold_ended"}  # both holds are still open: the run is not over


def test_cancelling_early_is_free_late_costs_the_fee_and_host_cancels_are_free(
    app: App, clock: ManualClock
) -> None:
    charger = add_charger(app)
    d = app.marketplace.add_driver("A", "A").driver_id
    host = app.marketplace.add_driver("B", "B").driver_id
    tomorrow = clock.now() + timedelta(days=1)
    early = app.bookings.book(BookRequest(d, charger, 1, 60, 10_000, starts_at=tomorrow)).booking_id
    assert app.bookings.cancel(early, driver_id=d).fee == 0
    with pytest.raises(NotFound):
        app.bookings.cancel(early, driver_id=host)  # someone else's booking: as if it did not exist
    late = book(app, charger, d)  # starts now: inside the late-cancellation window
    record = app.bookings.cancel(late, driver_id=d)
    assert (record.status, record.fee, record.cancelled_by) == (BookingStatus.CANCELLED, 150, "driver")
    by_host = book(app, charger, d)
    with app.store.transaction() as tx:
        host_id = tx.bookings.get(by_host).host_id
    record = app.bookings.cancel(by_host, host_id=host_id)
    assert (record.fee, record.cancelled_by) == (0, "host")
    assert failing(app) == set()
    assert isinstance(app.gateway, SimulatedGateway)
    assert [(h.state, h.captured) for h in app.gateway.holds.values()] == [
        ("released", 0),
        ("captured", 150),
        ("released", 0),
    ]


def test_bookings_respect_the_hosts_calendar_and_need_an_online_charger_to_start_now(
    app: App, clock: ManualClock
) -> None:
    charger = add_charger(app)
    offline = add_charger(app, "OFF", online=False)
    d = app.marketplace.add_driver("A", "A").driver_id
    # T0 is Monday 09:00 UTC (= local time in March): open weekdays 10:00-12:00 only
    app.marketplace.set_availability(charger, [WeeklyWindow(day, 600, 720) for day in range(5)])
    with pytest.raises(ChargerUnavailable):
        book(app, charger, d)  # 09:00 is closed
    ten = clock.now() + timedelta(hours=1)
    app.bookings.book(BookRequest(d, charger, 1, 120, 5_000, starts_at=ten))
    with pytest.raises(ChargerUnavailable):
        app.bookings.book(BookRequest(d, charger, 1, 30, 5_000, starts_at=ten + timedelta(hours=2)))
    with pytest.raises(ChargerUnavailable):
        book(app, offline, d)
    app.bookings.book(BookRequest(d, offline, 1, 30, 5_000, starts_at=clock.now() + timedelta(days=2)))


def test_declined_card_fails_the_booking_and_frees_the_slot(app: App) -> None:
    charger = add_charger(app)
    d = app.marketplace.add_driver("A", "A").driver_id
    assert isinstance(app.gateway, SimulatedGateway)
    app.gateway.decline_customers.add(f"driver:{d}")
    with pytest.raises(PaymentDeclined):
        book(app, charger, d)
    d2 = app.marketplace.add_driver("B", "B").driver_id
    book(app, charger, d2)  # the failed booking does not hold the connector
    with app.store.transaction() as tx:
        assert [b.status for b in tx.bookings.all()] == [BookingStatus.FAILED, BookingStatus.CONFIRMED]


def test_no_show_expires_after_grace_and_pays_the_no_show_fee(app: App, clock: ManualClock) -> None:
    charger = add_charger(app)
    d = app.marketplace.add_driver("A", "A").driver_id
    b = book(app, charger, d)
    assert app.bookings.expire_no_shows() == []
    clock.advance(16 * 60)
    assert app.bookings.expire_no_shows() == [b]
    with app.store.transaction() as tx:
        record = tx.bookings.get(b)
    assert (record.status, record.fee) == (BookingStatus.EXPIRED, 300)
    assert failing(app) == set()


def test_a_rejected_reservation_fails_the_booking_and_returns_the_hold(app: App) -> None:
    charger = add_charger(app)
    d = app.marketplace.add_driver("A", "A").driver_id
    b = book(app, charger, d)
    with app.store.transaction() as tx:
        assert tx.bookings.get(b).reservation == "sent"  # "charge now": ReserveNow goes out at once
    app.bookings.reservation_answered(b, "Rejected")
    with app.store.transaction() as tx:
        assert tx.bookings.get(b).status is BookingStatus.FAILED
    assert failing(app) == set()


def test_occupied_at_the_start_fails_the_booking_only_when_another_session_holds_the_connector(
    app: App, clock: ManualClock
) -> None:
    charger = add_charger(app)
    a = app.marketplace.add_driver("A", "A").driver_id
    b = app.marketplace.add_driver("B", "B").driver_id
    first = book(app, charger, a)
    # A's own car, plugged in as the ReserveNow arrived: not yet, and A's start is accepted.
    app.bookings.reservation_answered(first, "Occupied")
    with app.store.transaction() as tx:
        assert (tx.bookings.get(first).status, tx.bookings.get(first).reservation) == (
            BookingStatus.CONFIRMED,
            "occupied",
        )
    start = app.charging.start("CP1", 1, "A", 0, clock.now())
    assert start.status is AuthStatus.ACCEPTED
    started = start.transaction_id
    clock.advance(3600)  # A's booking is over; A's car still charges
    second = book(app, charger, b)
    app.bookings.reservation_answered(second, "Occupied")
    with app.store.transaction() as tx:
        record = tx.bookings.get(second)
    assert (record.status, record.fee) == (BookingStatus.FAILED, 0)  # the connector is taken: no fee
    assert app.charging.stop("CP1", started, 4_000, clock.now()) is AuthStatus.ACCEPTED
    assert failing(app) == set()


def test_a_no_show_whose_connector_was_found_occupied_pays_no_fee(app: App, clock: ManualClock) -> None:
    """A stranger's car blocks the bay (their start is refused: the slot is booked): the booked
    driver cannot plug in, and is not charged for not coming."""
    charger = add_charger(app)
    a = app.marketplace.add_driver("A", "A").driver_id
    app.marketplace.add_driver("Stranger", "S")
    b = book(app, charger, a)
    app.bookings.reservation_answered(b, "Occupied")
    assert app.charging.start("CP1", 1, "S", 0, clock.now()).status is AuthStatus.BLOCKED
    clock.advance(16 * 60)
    assert app.bookings.expire_no_shows() == [b]
    with app.store.transaction() as tx:
        record = tx.bookings.get(b)
    assert (record.status, record.fee) == (BookingStatus.EXPIRED, 0)
    assert failing(app) == set()


def test_a_stranger_plugged_in_before_the_lead_time_excuses_the_no_show(app: App, clock: ManualClock) -> None:
    """The bay is taken before any ReserveNow is due, so none is ever sent, and nothing but the
    sweep sees that the booked driver could not plug in."""
    charger = add_charger(app)
    a = app.marketplace.add_driver("A", "A").driver_id
    app.charging.boot("CP1", V16)
    app.charging.status("CP1", 1, ConnectorStatus.PREPARING)  # a stranger's car, no transaction
    later = clock.now() + timedelta(hours=2)
    b = app.bookings.book(BookRequest(a, charger, 1, 60, 10_000, starts_at=later)).booking_id
    clock.advance(2 * 3600 + 60)
    assert app.housekeeping.sweep().failed == {}
    clock.advance(15 * 60)
    app.charging.heartbeat("CP1")
    app.housekeeping.sweep()
    with app.store.transaction() as tx:
        record = tx.bookings.get(b)
    assert (record.status, record.reservation, record.fee) == (BookingStatus.EXPIRED, "none", 0)
    assert failing(app) == set()


def test_an_excused_no_show_stays_excused_when_the_bay_frees_before_the_grace_ends(
    app: App, clock: ManualClock
) -> None:
    """Occupied after the start, then the car leaves: the sweep asks for the reservation again,
    and the booking still remembers that its driver found the bay taken."""
    charger = add_charger(app)
    a = app.marketplace.add_driver("A", "A").driver_id
    app.charging.boot("CP1", V16)
    b = book(app, charger, a)
    clock.advance(60)
    app.bookings.reservation_answered(b, "Occupied")
    app.charging.status("CP1", 1, ConnectorStatus.AVAILABLE)  # the car left
    clock.advance(15 * 60)
    app.charging.heartbeat("CP1")
    app.housekeeping.sweep()  # asks for the reservation again, then expires the booking
    with app.store.transaction() as tx:
        record = tx.bookings.get(b)
    assert (record.status, record.reservation, record.fee) == (BookingStatus.EXPIRED, "sent", 0)
    assert failing(app) == set()


def test_a_bay_free_from_the_start_leaves_the_no_show_fee_due(app: App, clock: ManualClock) -> None:
    """A car that left before the start excuses nothing: the driver could have plugged in."""
    charger = add_charger(app)
    a = app.marketplace.add_driver("A", "A").driver_id
    app.charging.boot("CP1", V16)
    later = clock.now() + timedelta(hours=2)
    b = app.bookings.book(BookRequest(a, charger, 1, 60, 10_000, starts_at=later)).booking_id
    clock.advance(2 * 3600 - 10 * 60)
    app.charging.status("CP1", 1, ConnectorStatus.PREPARING)
    app.housekeeping.sweep()  # within the lead time, before the start: not marked
    app.charging.status("CP1", 1, ConnectorStatus.AVAILABLE)
    clock.advance(10 * 60 + 16 * 60)
    app.charging.heartbeat("CP1")
    app.housekeeping.sweep()
    with app.store.transaction() as tx:
        record = tx.bookings.get(b)
    assert (record.status, record.fee) == (BookingStatus.EXPIRED, 300)


def test_start_without_booking_or_with_someone_elses_is_refused(app: App, clock: ManualClock) -> None:
    charger = add_charger(app)
    a = app.marketplace.add_driver("A", "A").driver_id
    app.marketplace.add_driver("B", "B")
    assert app.charging.authorize("CP1", "B") is AuthStatus.BLOCKED
    assert app.charging.authorize("CP1", "nobody") is AuthStatus.INVALID
    book(app, charger, a)
    assert app.charging.start("CP1", 1, "B", 0, clock.now()).status is AuthStatus.BLOCKED
    assert app.charging.authorize("CP1", "A") is AuthStatus.ACCEPTED


def test_bad_requests_change_nothing(app: App) -> None:
    charger = add_charger(app)
    d = app.marketplace.add_driver("A", "A").driver_id
    for req in (
        BookRequest(d, charger, 1, 5, 1000),
        BookRequest(d, charger, 1, 60, 0),
        BookRequest(d, charger, 1, 60, 10**9),
    ):
        with pytest.raises(InvalidRequest):
            app.bookings.book(req)
    with pytest.raises(NotFound):
        app.bookings.book(BookRequest(d, charger, 2, 60, 1000))
    with app.store.transaction() as tx:
        assert tx.bookings.all() == []


# ---- the invariants catch broken data: each mutation turns exactly its check red ----------------


def settled(app: App, clock: ManualClock) -> int:
    charger = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG1")
    book(app, charger, driver.driver_id)
    return charge(app, clock, "TAG1", 0, 5_000)


def test_invariants_catch_a_doubled_capture(app: App, clock: ManualClock) -> None:
    settled(app, clock)
    with sql_store(app).engine.begin() as conn:
        conn.execute(
            update(t.ledger_postings)
            .where(t.ledger_postings.c.entry_id == "b1:capture")
            .values(amount=t.ledger_postings.c.amount * 2)
        )
    assert {"captured_equals_metered_cost", "cost_split"} <= failing(app)


def test_invariants_catch_an_unbalanced_entry(app: App, clock: ManualClock) -> None:
    settled(app, clock)
    with sql_store(app).engine.begin() as conn:
        conn.execute(
            insert(t.ledger_postings).values(entry_id="b1:capture-split", seq=9, account="x", amount=1)
        )
    assert failing(app) == {"journal_balanced"}


def test_invariants_catch_an_overlap_written_around_the_service(app: App, clock: ManualClock) -> None:
    settled(app, clock)
    with sql_store(app).engine.begin() as conn:
        conn.execute(
            insert(t.bookings).values(
                driver_id=1,
                connector_id=1,
                starts_at=clock.now() - timedelta(hours=1),
                ends_at=clock.now(),
                status="confirmed",
                max_energy_wh=1,
                price_per_kwh=1,
                hold_amount=1,
                created_at=clock.now(),
            )
        )
    assert "no_overlapping_bookings" in failing(app)


def test_invariants_catch_billing_off_the_meter(app: App, clock: ManualClock) -> None:
    tx = settled(app, clock)
    with sql_store(app).engine.begin() as conn:
        conn.execute(update(t.sessions).where(t.sessions.c.id == tx).values(billed_wh=4_000))
    assert "billed_energy_matches_meter" in failing(app)
