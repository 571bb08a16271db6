"""The services over a real SQLite store: booking, charging, settlement, and what the invariants see."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, update

from chargeshare.adapters import sql_schema as t
from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.errors import BookingConflict, InvalidRequest, NotFound, PaymentDeclined
from chargeshare.services.booking import BookRequest
from chargeshare.services.charging import AuthStatus
from chargeshare.services.clock import ManualClock
from chargeshare.services.invariants import check_store
from tests.conftest import add_charger


def failing(app: App) -> set[str]:
    return {r.name for r in check_store(app.store, app.config.rules.platform_fee_bps) if not r.ok}


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
    app.charging.boot("CP1", "1.6")
    booking_id = book(app, charger, driver.driver_id)
    tx = charge(app, clock, "TAG1", 1_000, 8_777)
    # a retried stop and a replayed start change nothing
    assert app.charging.stop("CP1", tx, 8_777, clock.now()) is AuthStatus.ACCEPTED
    assert isinstance(app.gateway, SimulatedGateway)
    assert app.gateway.total_captured == 272  # 7.777 kWh x 35p = 272.195 -> 272p
    with app.store.transaction() as t_:
        b = t_.booking(booking_id)
        s = t_.session(tx)
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


def test_cancel_releases_the_hold(app: App) -> None:
    charger = add_charger(app)
    d = app.marketplace.add_driver("A", "A").driver_id
    b = book(app, charger, d)
    assert app.bookings.cancel(b, d).status is BookingStatus.CANCELLED
    with pytest.raises(NotFound):
        app.bookings.cancel(b, d + 1)
    assert failing(app) == set()
    assert isinstance(app.gateway, SimulatedGateway) and app.gateway.holds["sim_hold_1"].state == "released"


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
        assert [b.status for b in tx.bookings()] == [BookingStatus.FAILED, BookingStatus.CONFIRMED]


def test_no_show_expires_after_grace(app: App, clock: ManualClock) -> None:
    charger = add_charger(app)
    d = app.marketplace.add_driver("A", "A").driver_id
    b = book(app, charger, d)
    assert app.bookings.expire_no_shows(timedelta(minutes=15)) == []
    clock.advance(16 * 60)
    assert app.bookings.expire_no_shows(timedelta(minutes=15)) == [b]
    assert failing(app) == set()


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
        assert tx.bookings() == []


# ---- the invariants catch broken data: each mutation turns exactly its check red ----------------


def settled(app: App, clock: ManualClock) -> int:
    charger = add_charger(app)
    driver = app.marketplace.add_driver("D", "TAG1")
    book(app, charger, driver.driver_id)
    return charge(app, clock, "TAG1", 0, 5_000)


def test_invariants_catch_a_doubled_capture(app: App, clock: ManualClock) -> None:
    settled(app, clock)
    with app.store.engine.begin() as conn:
        conn.execute(
            update(t.ledger_postings)
            .where(t.ledger_postings.c.entry_id == "b1:capture")
            .values(amount=t.ledger_postings.c.amount * 2)
        )
    assert {"captured_equals_metered_cost", "cost_split"} <= failing(app)


def test_invariants_catch_an_unbalanced_entry(app: App, clock: ManualClock) -> None:
    settled(app, clock)
    with app.store.engine.begin() as conn:
        conn.execute(insert(t.ledger_postings).values(entry_id="b1:split", seq=9, account="x", amount=1))
    assert failing(app) == {"journal_balanced"}


def test_invariants_catch_an_overlap_written_around_the_service(app: App, clock: ManualClock) -> None:
    settled(app, clock)
    with app.store.engine.begin() as conn:
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
    with app.store.engine.begin() as conn:
        conn.execute(update(t.sessions).where(t.sessions.c.id == tx).values(billed_wh=4_000))
    assert "billed_energy_matches_meter" in failing(app)
