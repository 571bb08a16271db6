"""The pricing repository's contract (hosts' settings, bookings' quotes), on the in-memory fake,
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.dynamic_pricing import HostPricing, Price, PricingMode, SmartTariff
from chargeshare.domain.errors import InvalidRequest, NotFound
from chargeshare.services.records import BookingQuote
from tests.conftest import T0
from tests.contract.test_repositories import a_booking, a_charger

DYNAMIC = HostPricing(PricingMode.DYNAMIC, 12, 80, SmartTariff(day_per_kwh=24, night_per_kwh=7))


def test_a_host_who_set_nothing_has_no_settings(app: App) -> None:
    with app.store.transaction() as tx:
        host = tx.accounts.add_host("Hattie")
    with app.store.reading() as tx:
        assert tx.pricing.settings(host) is None


def test_settings_are_kept_as_given_and_replaced_whole(app: App) -> None:
    flat = HostPricing(PricingMode.FLAT, 20, 30, SmartTariff(30, 9))
    with app.store.transaction() as tx:
        first = tx.accounts.add_host("A")
        second = tx.accounts.add_host("B")
        tx.pricing.save(first, DYNAMIC, T0)
        tx.pricing.save(second, flat, T0)
    with app.store.transaction() as tx:
        assert tx.pricing.settings(first) == DYNAMIC
        tx.pricing.save(first, flat, T0 + timedelta(minutes=1))
    with app.store.reading() as tx:
        assert tx.pricing.settings(first) == flat
        assert tx.pricing.settings(second) == flat


def test_settings_for_an_unknown_host_are_refused(app: App) -> None:
    with pytest.raises(NotFound), app.store.transaction() as tx:
        tx.pricing.save(9_999, DYNAMIC, T0)


def test_a_quote_is_fixed_once_per_booking_and_read_by_id(app: App) -> None:
    with app.store.transaction() as tx:
        _, (connector,) = a_charger(tx, "CP-Q")
        driver = tx.accounts.add_driver("Dee", "DEE-TAG")
        quoted = a_booking(tx, connector, driver)
        plain = a_booking(tx, connector, driver, start_h=2)
        tx.pricing.add_quote(quoted, Price(37, PricingMode.DYNAMIC), T0)
    with pytest.raises(InvalidRequest), app.store.transaction() as tx:
        tx.pricing.add_quote(quoted, Price(99, PricingMode.DYNAMIC), T0 + timedelta(minutes=1))
    with app.store.reading() as tx:
        expected = {quoted: BookingQuote(quoted, 37, "dynamic", T0)}
        assert tx.pricing.quotes([quoted, plain, 9_999]) == expected
        assert tx.pricing.quotes() == expected
        assert tx.pricing.quotes([]) == {}


def test_a_quote_for_an_unknown_booking_is_refused(app: App) -> None:
    with pytest.raises(NotFound), app.store.transaction() as tx:
        tx.pricing.add_quote(9_999, Price(30, PricingMode.FLAT), T0)


def test_a_failed_unit_of_work_keeps_no_settings_and_no_quote(app: App) -> None:
    with app.store.transaction() as tx:
        host = tx.accounts.add_host("Rolly")
        _, (connector,) = a_charger(tx, "CP-RB")
        driver = tx.accounts.add_driver("Rae", "RAE-TAG")
        booking = a_booking(tx, connector, driver)
    with pytest.raises(RuntimeError), app.store.transaction() as tx:
        tx.pricing.save(host, DYNAMIC, T0)
        tx.pricing.add_quote(booking, Price(30, PricingMode.FLAT), T0)
        raise RuntimeError("boom")
    with app.store.reading() as tx:
        assert tx.pricing.settings(host) is None
        assert tx.pricing.quotes() == {}
