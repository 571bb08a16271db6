"""Quotes and bookings: a dynamic host's price moves with the signals within its bounds, a booking
keeps the price it was quoted, and its session is billed and captured at it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.dynamic_pricing import GridReading, HostPricing, PricingMode, SmartTariff
from chargeshare.domain.errors import InvalidRequest, NotFound, PriceAboveLimit
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.invariants import check_store
from chargeshare.services.records import BookingRecord
from tests.conftest import T0, add_charger
from tests.pricing_mutants import penny_above

DYNAMIC = HostPricing(PricingMode.DYNAMIC, 10, 90, SmartTariff(day_per_kwh=25, night_per_kwh=7))


class CalmGrid:
    """Neither dirty nor clean, mild and overcast: only time of day and utilisation move prices."""

    def reading(self, at: datetime) -> GridReading:
        return GridReading(carbon_g_per_kwh=200, temperature_deci_c=120, solar_w_m2=0)


@pytest.fixture
def dynamic_charger(app: App) -> int:
    app.pricing.signals = CalmGrid()
    charger = add_charger(app, price=40)
    app.pricing.set_settings(host_of(app, charger), DYNAMIC)
    return charger


def host_of(app: App, charger_id: int) -> int:
    with app.store.reading() as tx:
        return tx.chargers.by_id(charger_id).host_id


def failing(app: App) -> set[str]:
    return {
        r.name for r in check_store(app.store, app.config.rules, now=app.clock.now(), final=False) if not r.ok
    }


def test_a_flat_host_is_quoted_its_listed_price(app: App) -> None:
    charger = add_charger(app, price=33)
    quote = app.pricing.quote(charger, T0.replace(hour=17), 60)
    assert (quote.price.per_kwh, quote.price.mode) == (33, PricingMode.FLAT)


def test_a_dynamic_quote_follows_the_time_of_day_and_the_area(app: App, dynamic_charger: int) -> None:
    # Alone and free: utilisation 0 takes 15% off; the evening adds 20%, the night takes 15% more.
    assert app.pricing.quote(dynamic_charger, T0.replace(hour=12), 60).price.per_kwh == 34
    assert app.pricing.quote(dynamic_charger, T0.replace(hour=17), 60).price.per_kwh == 42
    assert app.pricing.quote(dynamic_charger, T0.replace(hour=3) + timedelta(days=1), 60).price.per_kwh == 28


def test_a_booking_keeps_its_quote_and_is_billed_at_it_whatever_changes_after(
    app: App, clock: ManualClock, dynamic_charger: int
) -> None:
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    quoted = app.pricing.quote(dynamic_charger, None, 60).price.per_kwh
    booking = app.bookings.book(BookRequest(driver, dynamic_charger, 1, 60, 10_000))
    assert booking.price_per_kwh == quoted == 34
    with app.store.reading() as tx:
        assert tx.pricing.quotes([booking.booking_id])[booking.booking_id].per_kwh == 34
    # The host raises the listed price and the bounds; the booking's price stands.
    app.hosting.update_charger(dynamic_charger, host_of(app, dynamic_charger), price_per_kwh=80)
    app.pricing.set_settings(
        host_of(app, dynamic_charger), HostPricing(PricingMode.DYNAMIC, 60, 90, SmartTariff(25, 7))
    )
    clock.advance(60)
    tx_id = app.charging.start("CP1", 1, "TAG", 1_000, clock.now()).transaction_id
    app.charging.stop("CP1", tx_id, 11_000, clock.now())
    app.settlement.reconcile()
    with app.store.reading() as tx:
        session = tx.sessions.get(tx_id)
    assert session is not None and session.cost == 340  # 10 kWh at 34p
    assert failing(app) == set()


def test_a_booking_priced_otherwise_than_its_quote_is_caught(
    app: App, clock: ManualClock, dynamic_charger: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mutant: bookings are written a penny above their quote (captures follow the booking, so
    only the quote tells)."""
    penny_above(monkeypatch)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    app.bookings.book(BookRequest(driver, dynamic_charger, 1, 60, 10_000))
    clock.advance(60)
    tx_id = app.charging.start("CP1", 1, "TAG", 1_000, clock.now()).transaction_id
    app.charging.stop("CP1", tx_id, 11_000, clock.now())
    app.settlement.reconcile()
    assert failing(app) == {"capture_matches_quote"}


def test_pricing_for_an_unknown_host_or_charger_is_refused(app: App) -> None:
    with pytest.raises(NotFound):
        app.pricing.set_settings(9_999, DYNAMIC)
    with pytest.raises(NotFound):
        app.pricing.quote(9_999, None, 60)


def test_a_booking_dearer_than_the_driver_accepts_is_refused_and_keeps_nothing(
    app: App, dynamic_charger: int
) -> None:
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    quoted = app.pricing.quote(dynamic_charger, None, 60).price.per_kwh
    with pytest.raises(PriceAboveLimit, match=f"{quoted}p"):
        app.bookings.book(BookRequest(driver, dynamic_charger, 1, 60, 10_000, max_price_per_kwh=quoted - 1))
    with app.store.reading() as tx:
        assert tx.bookings.all() == [] and tx.pricing.quotes() == {} and tx.ledger.entries() == []
    made = app.bookings.book(BookRequest(driver, dynamic_charger, 1, 60, 10_000, max_price_per_kwh=quoted))
    assert made.price_per_kwh == quoted


def test_a_copy_that_misses_the_first_as_it_starts_answers_with_it_not_the_price_it_raised(
    app: App, dynamic_charger: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy of a booking request, under its Idempotency-Key and with the driver's price limit,
    finds nothing under its key as it starts; the first then commits. The first's booking fills
    the area, so the copy is quoted dearer than the limit: it must answer with the first's
    booking, as a copy a moment later would, not tell the driver nothing was booked."""
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    quoted = app.pricing.quote(dynamic_charger, None, 60).price.per_kwh
    req = BookRequest(driver, dynamic_charger, 1, 60, 10_000, max_price_per_kwh=quoted)
    real = app.bookings._made_by
    made: list[BookingRecord] = []
    looked: list[str] = []

    def first_commits_after_the_copy_looked(r: BookRequest, key: str) -> BookingRecord | None:
        earlier = real(r, key)
        if not looked:  # the copy has looked: the first request now runs to its answer
            looked.append(key)
            made.append(app.bookings.book(r, request_key=key))
        return earlier

    monkeypatch.setattr(app.bookings, "_made_by", first_commits_after_the_copy_looked)
    copy = app.bookings.book(req, request_key="k1")
    assert app.pricing.quote(dynamic_charger, None, 60).price.per_kwh > quoted  # the area filled
    assert copy.booking_id == made[0].booking_id and copy.status is BookingStatus.CONFIRMED
    with app.store.reading() as tx:
        assert len(tx.bookings.all()) == 1
    assert failing(app) == set()


def test_a_quote_for_a_time_without_its_zone_is_refused_not_guessed(app: App) -> None:
    charger = add_charger(app, "CP1", price=30)
    with pytest.raises(InvalidRequest, match="time zone"):
        app.pricing.quote(charger, T0.replace(tzinfo=None), 60)
