"""Held quotes (on the in-memory store): a booking naming the quote it was shown is made at that
price even after the dynamic price moved, or refused saying why, and a quote is used once; a copy of
a booking request sent again under its Idempotency-Key answers as the first, not "quote used"."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorStatus, ConnectorType
from chargeshare.domain.dynamic_pricing import HostPricing, PricingMode, SmartTariff
from chargeshare.domain.errors import NotFound, QuoteExpired, QuoteMismatch, QuoteUsed
from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff
from chargeshare.ocpp import V16
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from tests.conftest import T0
from tests.pricing_mutants import penny_above_held
from tests.services.test_pricing_service import DYNAMIC, CalmGrid, failing, host_of

START = T0 + timedelta(hours=3)  # 12:00: alone and free, 40p less 15% is 34p
# The host's floor rises to 60p after the driver was quoted: the dynamic price moves to 60p.
DEARER = HostPricing(PricingMode.DYNAMIC, 60, 90, SmartTariff(day_per_kwh=25, night_per_kwh=7))


def twin_charger(app: App, cp_id: str = "CP1") -> int:
    """A dynamically priced charger with two connectors, so two bookings may share one window."""
    app.pricing.signals = CalmGrid()
    host = app.marketplace.add_host(f"host of {cp_id}")
    connectors = tuple(ConnectorSpec(n, ConnectorType.TYPE2, 7400) for n in (1, 2))
    charger = app.marketplace.add_charger(
        ChargerSpec(cp_id, host, Point(51.45, -2.59), Tariff(40), connectors)
    ).charger_id
    app.charging.boot(cp_id, V16)
    app.charging.status(cp_id, 0, ConnectorStatus.AVAILABLE)
    app.pricing.set_settings(host, DYNAMIC)
    return charger


def booked_count(app: App) -> int:
    with app.store.reading() as tx:
        return len(tx.bookings.all())


def test_a_held_quote_prices_the_booking_after_the_price_moved(app: App) -> None:
    charger = twin_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    quote, held = app.pricing.hold(driver, charger, START, 60)
    assert held.per_kwh == quote.price.per_kwh == 34 and held.expires_at == T0 + timedelta(minutes=10)
    app.pricing.set_settings(host_of(app, charger), DEARER)
    assert app.pricing.quote(charger, START, 60).price.per_kwh == 60
    booking = app.bookings.book(
        BookRequest(driver, charger, 1, 60, 10_000, starts_at=START, quote_id=held.quote_id)
    )
    assert booking.price_per_kwh == 34
    without = app.bookings.book(BookRequest(driver, charger, 2, 60, 10_000, starts_at=START))
    assert without.price_per_kwh == 60  # no quote named: priced as it is now, as before
    with app.store.reading() as tx:
        assert tx.pricing.quotes([booking.booking_id])[booking.booking_id].per_kwh == 34
        assert tx.pricing.held_used_by()[booking.booking_id].quote_id == held.quote_id
    assert failing(app) == set()


def test_a_charge_now_quote_is_held_for_a_booking_made_now_until_it_expires(
    app: App, clock: ManualClock
) -> None:
    charger = twin_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    _, held = app.pricing.hold(driver, charger, None, 60)
    app.pricing.set_settings(host_of(app, charger), DEARER)
    clock.advance(9 * 60)
    booking = app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000, quote_id=held.quote_id))
    assert booking.price_per_kwh == held.per_kwh == 34 and booking.starts_at == clock.now()
    _, late = app.pricing.hold(driver, charger, None, 60)
    clock.advance(10 * 60)
    with pytest.raises(QuoteExpired):
        app.bookings.book(BookRequest(driver, charger, 2, 60, 10_000, quote_id=late.quote_id))
    assert booking.price_per_kwh == 34 and failing(app) == set()


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"driver": "other"}, NotFound),  # someone else's: as if it did not exist
        ({"starts_at": START + timedelta(hours=1)}, QuoteMismatch),
        ({"minutes": 90}, QuoteMismatch),
        ({"charger": "other"}, QuoteMismatch),
        ({"expired": True}, QuoteExpired),
    ],
)
def test_a_quote_not_for_this_booking_is_refused_and_nothing_is_booked(
    app: App, clock: ManualClock, change: dict[str, object], error: type[Exception]
) -> None:
    charger, other_charger = twin_charger(app), twin_charger(app, "CP2")
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    other = app.marketplace.add_driver("E", "ETAG").driver_id
    _, held = app.pricing.hold(driver, charger, START, 60)
    if change.get("expired"):
        clock.advance(10 * 60)
    before = booked_count(app)
    req = BookRequest(
        other if change.get("driver") else driver,
        other_charger if change.get("charger") else charger,
        1,
        int(change.get("minutes", 60)),  # type: ignore[call-overload]
        10_000,
        starts_at=change.get("starts_at", START),  # type: ignore[arg-type]
        quote_id=held.quote_id,
    )
    with pytest.raises(error):
        app.bookings.book(req)
    assert booked_count(app) == before


def test_a_quote_is_used_once_even_after_its_booking_is_cancelled(app: App) -> None:
    charger = twin_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    _, held = app.pricing.hold(driver, charger, START, 60)
    first = app.bookings.book(
        BookRequest(driver, charger, 1, 60, 10_000, starts_at=START, quote_id=held.quote_id)
    )
    with pytest.raises(QuoteUsed):  # on the other connector: only the quote stands in the way
        app.bookings.book(
            BookRequest(driver, charger, 2, 60, 10_000, starts_at=START, quote_id=held.quote_id)
        )
    app.bookings.cancel(first.booking_id, driver_id=driver)
    with pytest.raises(QuoteUsed):
        app.bookings.book(
            BookRequest(driver, charger, 1, 60, 10_000, starts_at=START, quote_id=held.quote_id)
        )


def test_a_copy_sent_again_under_its_key_answers_with_the_booking_not_quote_used(app: App) -> None:
    charger = twin_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    _, held = app.pricing.hold(driver, charger, START, 60)
    req = BookRequest(driver, charger, 1, 60, 10_000, starts_at=START, quote_id=held.quote_id)
    first = app.bookings.book(req, request_key="k1")
    assert app.bookings.book(req, request_key="k1").booking_id == first.booking_id
    with pytest.raises(QuoteUsed):  # another attempt, under another key: the quote is spent
        app.bookings.book(replace(req, connector_no=2), request_key="k2")


def test_a_copy_that_misses_the_first_as_it_starts_answers_with_it(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy finds nothing under its key as it starts (the first had not committed), then finds
    the slot, the key and the quote taken as it books: it answers with the first's booking."""
    charger = twin_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    _, held = app.pricing.hold(driver, charger, START, 60)
    req = BookRequest(driver, charger, 1, 60, 10_000, starts_at=START, quote_id=held.quote_id)
    first = app.bookings.book(req, request_key="k1")
    service = type(app.bookings)
    real = service._made_by
    calls: list[str] = []

    def unseen_at_first(self: object, r: BookRequest, key: str) -> object:
        calls.append(key)
        return None if len(calls) == 1 else real(app.bookings, r, key)

    monkeypatch.setattr(service, "_made_by", unseen_at_first)
    assert app.bookings.book(req, request_key="k1").booking_id == first.booking_id
    assert len(calls) == 2 and booked_count(app) == 1


def test_a_booking_priced_otherwise_than_its_held_quote_is_caught(
    app: App, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mutant: a booking named its quote but was priced a penny above it. Its price, quote and
    capture agree with each other, so only the held quote tells."""
    charger = twin_charger(app)
    driver = app.marketplace.add_driver("D", "TAG").driver_id
    _, held = app.pricing.hold(driver, charger, None, 60)
    penny_above_held(monkeypatch)
    app.bookings.book(BookRequest(driver, charger, 1, 60, 10_000, quote_id=held.quote_id))
    clock.advance(60)
    tx_id = app.charging.start("CP1", 1, "TAG", 1_000, clock.now()).transaction_id
    app.charging.stop("CP1", tx_id, 11_000, clock.now())
    app.settlement.reconcile()
    assert failing(app) == {"capture_matches_quote"}
