"""Held quotes no booking used are deleted by the housekeeping sweep once they expired longer ago
than the retention, a bounded batch at a time; a quote a booking was made with is kept with it, so
capture_matches_quote still checks the booking against it; a booking naming a deleted quote is
refused as for a quote that never was (NotFound)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.errors import NotFound
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from tests.pricing_mutants import penny_above_held
from tests.services.test_held_quotes import START, twin_charger
from tests.services.test_pricing_service import failing

HOLD = timedelta(minutes=10)
RETENTION = timedelta(days=1)  # the default


def held_ids(app: App) -> set[int]:
    with app.store.reading() as tx:
        return set(tx.pricing.held_ids())


def test_the_retention_defaults_to_a_day(app: App) -> None:
    assert app.config.rules.quote_retention_s == 86_400
    assert app.pricing.retention == RETENTION


def test_the_sweep_deletes_unused_quotes_expired_longer_ago_than_the_retention(
    app: App, clock: ManualClock
) -> None:
    charger = twin_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    _, old = app.pricing.hold(driver, charger, START, 60)
    _, used = app.pricing.hold(driver, charger, START, 60)
    app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000, starts_at=START, quote_id=used.quote_id))
    clock.advance(60)
    _, later = app.pricing.hold(driver, charger, START, 60)  # expires a minute after `old`
    clock.advance(int((HOLD + RETENTION).total_seconds()) - 60)  # `old` expired a day ago, exactly
    assert app.housekeeping.sweep().counts["held_quotes_deleted"] == 0  # not longer ago: kept
    clock.advance(1)
    assert app.housekeeping.sweep().counts["held_quotes_deleted"] == 1
    assert held_ids(app) == {used.quote_id, later.quote_id}
    clock.advance(60)
    assert app.housekeeping.sweep().counts["held_quotes_deleted"] == 1
    clock.advance(30 * 86_400)  # a month on, the quote its booking was made with is still there
    assert app.housekeeping.sweep().counts["held_quotes_deleted"] == 0
    assert held_ids(app) == {used.quote_id}
    soon = clock.now() + timedelta(hours=1)
    with pytest.raises(NotFound):  # a deleted quote is one that never was
        app.bookings.book(BookRequest(driver, charger, 2, 60, 10_000, starts_at=soon, quote_id=old.quote_id))
    assert failing(app) == set()


def test_quotes_are_deleted_a_bounded_batch_at_a_time(app: App, clock: ManualClock) -> None:
    charger = twin_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    for _ in range(7):
        app.pricing.hold(driver, charger, START, 60)
    clock.advance(int((HOLD + RETENTION).total_seconds()) + 1)
    with app.store.transaction() as tx:
        assert tx.pricing.delete_expired_held(clock.now() - RETENTION, limit=3) == 3
    assert len(held_ids(app)) == 4
    assert app.pricing.delete_expired_quotes(batch=3, batches=1) == 3  # one batch only, this sweep
    assert app.pricing.delete_expired_quotes(batch=3) == 1  # batches until one comes up short
    assert held_ids(app) == set()


def test_a_booking_made_with_a_quote_is_still_checked_against_it_long_after(
    app: App, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The penny-above mutant (priced otherwise than its held quote) is still caught after sweeps
    long past the quote's retention: the quote its booking used was not deleted."""
    charger = twin_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    _, held = app.pricing.hold(driver, charger, None, 60)
    penny_above_held(monkeypatch)
    app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000, quote_id=held.quote_id))
    clock.advance(60)
    tx_id = app.charging.start("CP1", 1, "TAG", 1_000, clock.now()).transaction_id
    app.charging.stop("CP1", tx_id, 11_000, clock.now())
    app.settlement.reconcile()
    clock.advance(int((HOLD + RETENTION).total_seconds()) * 3)
    app.housekeeping.sweep()
    assert held_ids(app) == {held.quote_id}
    assert failing(app) == {"capture_matches_quote"}
