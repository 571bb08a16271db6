"""The pricing repository's contract (hosts' settings, bookings' quotes), on the in-memory fake,
SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.dynamic_pricing import HostPricing, Price, PricingMode, SmartTariff
from chargeshare.domain.errors import InvalidRequest, NotFound
from chargeshare.domain.held_quotes import HeldQuote
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


def a_held_quote(driver: int, charger: int, per_kwh: int = 41) -> HeldQuote:
    starts = T0 + timedelta(hours=2)
    return HeldQuote(
        0,
        driver,
        charger,
        starts,
        starts + timedelta(hours=1),
        False,
        per_kwh,
        PricingMode.DYNAMIC,
        T0,
        T0 + timedelta(minutes=10),
    )


def test_a_held_quote_is_kept_as_given_and_read_by_id(app: App) -> None:
    with app.store.transaction() as tx:
        charger, _ = a_charger(tx, "CP-H")
        driver = tx.accounts.add_driver("Dee", "DEE-TAG")
        held = tx.pricing.hold(a_held_quote(driver, charger))
        now = tx.pricing.hold(replace(a_held_quote(driver, charger, 12), immediate=True))
    assert held.quote_id > 0 and now.quote_id not in (0, held.quote_id)
    with app.store.reading() as tx:
        assert tx.pricing.held(held.quote_id) == replace(
            a_held_quote(driver, charger), quote_id=held.quote_id
        )
        assert tx.pricing.held(now.quote_id).immediate and tx.pricing.held(now.quote_id).per_kwh == 12
        assert tx.pricing.held_used_by() == {}
    with pytest.raises(NotFound), app.store.reading() as tx:
        tx.pricing.held(9_999)
    for unknown in (replace(held, driver_id=9_999), replace(held, charger_id=9_999)):
        with pytest.raises(NotFound), app.store.transaction() as tx:
            tx.pricing.hold(unknown)


def test_a_held_quote_is_used_by_one_booking_at_most(app: App) -> None:
    with app.store.transaction() as tx:
        charger, (one, two) = a_charger(tx, "CP-H", 1, 2)
        driver = tx.accounts.add_driver("Dee", "DEE-TAG")
        held = tx.pricing.hold(a_held_quote(driver, charger))
        first = a_booking(tx, one, driver, start_h=2)
        second = a_booking(tx, two, driver, start_h=2)
        assert tx.pricing.use_held(held.quote_id, first)
        assert not tx.pricing.use_held(held.quote_id, second)
    with app.store.reading() as tx:
        assert tx.pricing.held(held.quote_id).booking_id == first
        assert tx.pricing.held_used_by([first, second]) == {first: replace(held, booking_id=first)}
        assert tx.pricing.held_used_by() == {first: replace(held, booking_id=first)}
        assert tx.pricing.held_used_by([]) == {}


def test_a_use_rolled_back_leaves_the_quote_unused(app: App) -> None:
    with app.store.transaction() as tx:
        charger, (one,) = a_charger(tx, "CP-H")
        driver = tx.accounts.add_driver("Dee", "DEE-TAG")
        held = tx.pricing.hold(a_held_quote(driver, charger))
    with pytest.raises(RuntimeError), app.store.transaction() as tx:
        assert tx.pricing.use_held(held.quote_id, a_booking(tx, one, driver, start_h=2))
        raise RuntimeError("the booking failed after the quote was used")
    with app.store.reading() as tx:
        assert tx.pricing.held(held.quote_id).booking_id is None


def test_expired_quotes_no_booking_used_are_deleted_a_batch_at_a_time(app: App) -> None:
    """`delete_expired_held` deletes at most `limit` quotes that expired before the cut-off and no
    booking used, and says how many; the others stay as they were."""
    with app.store.transaction() as tx:
        charger, (one,) = a_charger(tx, "CP-H")
        driver = tx.accounts.add_driver("Dee", "DEE-TAG")
        old = [tx.pricing.hold(a_held_quote(driver, charger)).quote_id for _ in range(5)]
        used = tx.pricing.hold(a_held_quote(driver, charger)).quote_id
        assert tx.pricing.use_held(used, a_booking(tx, one, driver, start_h=2))
        later = replace(a_held_quote(driver, charger), expires_at=T0 + timedelta(minutes=11))
        fresh = tx.pricing.hold(later).quote_id
    expired = T0 + timedelta(minutes=10)  # when `old` and `used` expired
    with app.store.transaction() as tx:
        assert tx.pricing.delete_expired_held(expired, limit=10) == 0  # expired at, not before: kept
        assert tx.pricing.held_ids() == sorted([*old, used, fresh])
    cut = expired + timedelta(seconds=1)
    with app.store.transaction() as tx:
        assert tx.pricing.delete_expired_held(cut, limit=2) == 2
    with app.store.transaction() as tx:
        assert tx.pricing.delete_expired_held(cut, limit=10) == 3
        assert tx.pricing.delete_expired_held(cut, limit=10) == 0
    with app.store.reading() as tx:
        assert tx.pricing.held_ids() == sorted([used, fresh])
        assert tx.pricing.held(used).booking_id is not None
        for gone in old:
            with pytest.raises(NotFound):
                tx.pricing.held(gone)
    with pytest.raises(InvalidRequest), app.store.transaction() as tx:
        tx.pricing.delete_expired_held(cut, limit=0)
