"""Held quotes on real databases: on SQLite and PostgreSQL a booking naming its quote is made at the
quote's price after the price moved, and the quote is spent; on PostgreSQL two bookings racing for
one quote (on two connectors, so no other guard stands between them) make one booking, and two
copies of one request under one Idempotency-Key answer with the same booking; sweeps deleting
expired quotes in several processes at once delete each once, and pass over (without waiting for)
a quote a booking is using as they run."""

from __future__ import annotations

import threading
import traceback
from datetime import timedelta
from typing import Any

import pytest

from chargeshare.adapters.sql.pricing import SqlPricing
from chargeshare.bootstrap import App
from chargeshare.domain.errors import QuoteUsed, RequestInProgress
from chargeshare.domain.held_quotes import HeldQuote
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.records import BookingRecord
from tests.contract.test_pricing import a_held_quote
from tests.contract.test_repositories import a_booking, a_charger
from tests.integration.test_grid_allocation_race import WAIT_S, waiting_on_a_lock_or_done
from tests.integration.test_grid_and_fleet_races import in_thread
from tests.services.test_held_quotes import DEARER, START, twin_charger
from tests.services.test_pricing_service import failing, host_of


def held_for(app: App) -> tuple[int, int, HeldQuote]:
    charger = twin_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    _, held = app.pricing.hold(driver, charger, START, 60)
    app.pricing.set_settings(host_of(app, charger), DEARER)  # the price moves after the quote
    return charger, driver, held


def test_a_booking_is_made_at_its_held_quote_and_spends_it(sql_app: App) -> None:
    charger, driver, held = held_for(sql_app)
    req = BookRequest(driver, charger, 1, 60, 10_000, starts_at=START, quote_id=held.quote_id)
    booking = sql_app.bookings.book(req)
    assert booking.price_per_kwh == held.per_kwh == 34
    with pytest.raises(QuoteUsed):
        sql_app.bookings.book(
            BookRequest(driver, charger, 2, 60, 10_000, starts_at=START, quote_id=held.quote_id)
        )
    with sql_app.store.reading() as tx:
        assert tx.pricing.held(held.quote_id).booking_id == booking.booking_id
        assert [b.booking_id for b in tx.bookings.all()] == [booking.booking_id]
    assert failing(sql_app) == set()


def race(
    pg_app: App, monkeypatch: pytest.MonkeyPatch, first: BookRequest, second: BookRequest, key: str | None
) -> tuple[list[BookingRecord], list[BaseException]]:
    """`first` marks the quote used and stalls before committing; `second` is started meanwhile and
    must wait on the database; then `first` commits."""
    inside, release = threading.Event(), threading.Event()
    real = SqlPricing.use_held

    def use_and_hold(self: SqlPricing, *args: Any) -> bool:
        used = real(self, *args)
        if not inside.is_set():
            inside.set()
            assert release.wait(WAIT_S), "never released"
        return used

    monkeypatch.setattr(SqlPricing, "use_held", use_and_hold)
    answers: list[BookingRecord] = []
    failures: list[BaseException] = []
    a = in_thread(lambda: answers.append(pg_app.bookings.book(first, request_key=key)), failures)
    assert inside.wait(WAIT_S), [traceback.format_exception(f) for f in failures]
    b = in_thread(lambda: answers.append(pg_app.bookings.book(second, request_key=key)), failures)
    waiting_on_a_lock_or_done(pg_app, b)
    release.set()
    a.join(WAIT_S)
    b.join(WAIT_S)
    assert not a.is_alive() and not b.is_alive()
    return answers, failures


@pytest.mark.postgres
def test_two_bookings_racing_for_one_quote_make_one(pg_app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    charger, driver, held = held_for(pg_app)
    on = [
        BookRequest(driver, charger, n, 60, 10_000, starts_at=START, quote_id=held.quote_id) for n in (1, 2)
    ]
    answers, failures = race(pg_app, monkeypatch, on[0], on[1], None)
    assert len(answers) == 1 and answers[0].price_per_kwh == 34
    assert [type(f) for f in failures] == [QuoteUsed], failures
    with pg_app.store.reading() as tx:
        assert [b.booking_id for b in tx.bookings.all()] == [answers[0].booking_id]
        assert tx.pricing.held(held.quote_id).booking_id == answers[0].booking_id
    assert failing(pg_app) == set()


@pytest.mark.postgres
def test_two_copies_of_a_request_with_a_quote_answer_with_one_booking(
    pg_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    charger, driver, held = held_for(pg_app)
    req = BookRequest(driver, charger, 1, 60, 10_000, starts_at=START, quote_id=held.quote_id)
    answers, failures = race(pg_app, monkeypatch, req, req, "attempt-1")
    # The copy is answered with the booking, or told it is still being made (its card hold may not
    # be placed yet as it looks): never that its quote is used.
    assert all(isinstance(f, RequestInProgress) for f in failures) and len(answers + failures) == 2, failures
    made = pg_app.bookings.book(req, request_key="attempt-1")  # asked again once all is done
    assert {a.booking_id for a in answers} == {made.booking_id} and made.price_per_kwh == 34
    with pg_app.store.reading() as tx:
        assert len(tx.bookings.all()) == 1


def expired_quotes(app: App, clock: ManualClock, count: int) -> tuple[int, int, list[int]]:
    """`count` quotes no booking used, expired longer ago than the retention once this returns."""
    with app.store.transaction() as tx:
        charger, (connector,) = a_charger(tx, "CP-X")
        driver = tx.accounts.add_driver("Dee", "DEE-X")
        ids = [tx.pricing.hold(a_held_quote(driver, charger)).quote_id for _ in range(count)]
    clock.advance(int((timedelta(minutes=10) + app.pricing.retention).total_seconds()) + 1)
    return connector, driver, ids


def test_the_sweep_deletes_expired_unused_quotes_on_a_real_database(sql_app: App, clock: ManualClock) -> None:
    expired_quotes(sql_app, clock, 5)
    assert sql_app.pricing.delete_expired_quotes(batch=2) == 5
    with sql_app.store.reading() as tx:
        assert tx.pricing.held_ids() == []
    assert failing(sql_app) == set()


@pytest.mark.postgres
def test_sweeps_at_once_delete_each_expired_quote_once(pg_app: App, clock: ManualClock) -> None:
    expired_quotes(pg_app, clock, 60)
    start = threading.Barrier(4)
    counts: list[int] = []
    failures: list[BaseException] = []

    def sweep() -> None:
        start.wait(WAIT_S)
        counts.append(pg_app.pricing.delete_expired_quotes(batch=7))

    threads = [in_thread(sweep, failures) for _ in range(4)]
    for th in threads:
        th.join(WAIT_S)
    assert not failures and not any(th.is_alive() for th in threads), failures
    assert sum(counts) == 60, counts
    with pg_app.store.reading() as tx:
        assert tx.pricing.held_ids() == []


@pytest.mark.postgres
def test_a_sweep_passes_over_a_quote_being_used_without_waiting(pg_app: App, clock: ManualClock) -> None:
    """A booking marks an expired quote used (the repository does not check expiry: the service
    did, before it expired) and has not committed: the sweep deletes the others, passing over it
    rather than waiting on its row, and the booking keeps its quote."""
    connector, driver, (busy, other) = expired_quotes(pg_app, clock, 2)
    inside, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def use() -> None:
        with pg_app.store.transaction() as tx:
            assert tx.pricing.use_held(busy, a_booking(tx, connector, driver, start_h=2))
            inside.set()
            assert release.wait(WAIT_S)

    booking = in_thread(use, failures)
    assert inside.wait(WAIT_S), failures
    deleted: list[int] = []
    sweep = in_thread(lambda: deleted.append(pg_app.pricing.delete_expired_quotes()), failures)
    sweep.join(WAIT_S)
    still_waiting = sweep.is_alive()
    release.set()
    booking.join(WAIT_S)
    sweep.join(WAIT_S)
    assert not still_waiting and not failures and deleted == [1], (deleted, failures)
    with pg_app.store.reading() as tx:
        assert tx.pricing.held_ids() == [busy] and tx.pricing.held(busy).booking_id is not None
        assert other not in tx.pricing.held_ids()
