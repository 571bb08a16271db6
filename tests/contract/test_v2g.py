"""The V2G repository's contract (export terms and export records per booking, the grid buyer's
settled months), on the in-memory fake, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.errors import NotFound
from chargeshare.domain.grid_settlement import GridSettlement
from chargeshare.domain.v2g import ExportRecord, ExportTerms
from tests.conftest import T0
from tests.contract.test_repositories import a_booking, a_charger


def test_terms_and_records_are_kept_per_booking_and_replaced_whole(app: App) -> None:
    with app.store.transaction() as tx:
        _, (connector,) = a_charger(tx, "CP-V2G")
        driver = tx.accounts.add_driver("Vee", "VEE-TAG")
        booking = a_booking(tx, connector, driver)
        other = a_booking(tx, connector, driver, start_h=2)
        tx.v2g.set_terms(ExportTerms(booking, 25, 40, T0))
        tx.v2g.save_record(ExportRecord(booking, 1_000, 1_000, 80), T0)
    with app.store.transaction() as tx:
        tx.v2g.set_terms(ExportTerms(booking, 30, 50, T0 + timedelta(minutes=1)))
        tx.v2g.save_record(ExportRecord(booking, 1_000, 4_000, 55, 55, 3_000, 90), T0)
    with app.store.reading() as tx:
        assert tx.v2g.terms(booking) == ExportTerms(booking, 30, 50, T0 + timedelta(minutes=1))
        assert tx.v2g.terms(other) is None
        assert tx.v2g.all_terms() == [ExportTerms(booking, 30, 50, T0 + timedelta(minutes=1))]
        assert tx.v2g.record(booking) == ExportRecord(booking, 1_000, 4_000, 55, 55, 3_000, 90)
        assert tx.v2g.record(other) is None
        assert tx.v2g.records() == [ExportRecord(booking, 1_000, 4_000, 55, 55, 3_000, 90)]


def test_an_unknown_booking_gets_no_terms_and_a_failed_unit_keeps_nothing(app: App) -> None:
    with pytest.raises(NotFound), app.store.transaction() as tx:
        tx.v2g.set_terms(ExportTerms(9_999, 25, 40, T0))
    with pytest.raises(NotFound), app.store.transaction() as tx:
        tx.v2g.save_record(ExportRecord(9_999), T0)
    with app.store.transaction() as tx:
        _, (connector,) = a_charger(tx, "CP-V2G-RB")
        booking = a_booking(tx, connector, tx.accounts.add_driver("Rae", "RAE-TAG"))
    with pytest.raises(RuntimeError), app.store.transaction() as tx:
        tx.v2g.set_terms(ExportTerms(booking, 25, 40, T0))
        tx.v2g.save_record(ExportRecord(booking, 5), T0)
        raise RuntimeError("boom")
    with app.store.reading() as tx:
        assert tx.v2g.all_terms() == [] and tx.v2g.records() == []


def test_a_month_is_settled_once_listed_by_month_and_a_failed_unit_keeps_nothing(app: App) -> None:
    def settled(month: str, amount: int) -> GridSettlement:
        return GridSettlement(month, amount, 2, f"grid-settlement:{month}", T0, None)

    with app.store.transaction() as tx:
        assert tx.v2g.add_settlement(settled("2026-02", 166))
        assert tx.v2g.add_settlement(settled("2026-01", 40))
        assert not tx.v2g.add_settlement(settled("2026-02", 7))  # the month's key: the first stands
    with pytest.raises(RuntimeError), app.store.transaction() as tx:
        tx.v2g.add_settlement(settled("2026-03", 5))
        raise RuntimeError("boom")
    with app.store.reading() as tx:
        assert tx.v2g.settlement("2026-02") == settled("2026-02", 166)
        assert tx.v2g.settlement("2026-03") is None
        assert tx.v2g.settlements() == [settled("2026-01", 40), settled("2026-02", 166)]


def test_terms_and_records_are_read_for_a_list_of_bookings(app: App) -> None:
    with app.store.transaction() as tx:
        _, (connector,) = a_charger(tx, "CP-V2G-IDS")
        driver = tx.accounts.add_driver("Ida", "IDA-TAG")
        booking = a_booking(tx, connector, driver)
        bare = a_booking(tx, connector, driver, start_h=2)
        tx.v2g.set_terms(ExportTerms(booking, 25, 40, T0))
        tx.v2g.save_record(ExportRecord(booking, 1_000, 4_000, 55, 55, 3_000, 75), T0)
    with app.store.reading() as tx:
        assert tx.v2g.terms_of([booking, bare, booking]) == {booking: ExportTerms(booking, 25, 40, T0)}
        assert tx.v2g.records_of([bare, booking]) == {
            booking: ExportRecord(booking, 1_000, 4_000, 55, 55, 3_000, 75)
        }
        assert tx.v2g.terms_of([]) == {} and tx.v2g.records_of([]) == {}


def test_a_settled_record_is_taken_up_once_from_the_reading_it_was_settled_on(app: App) -> None:
    with app.store.transaction() as tx:
        _, (connector,) = a_charger(tx, "CP-V2G-LATE")
        booking = a_booking(tx, connector, tx.accounts.add_driver("Lee", "LEE-TAG"))
        tx.v2g.save_record(ExportRecord(booking, 50_000, 52_000, 60, 60), T0)
        unsettled = ExportRecord(booking, 50_000, 55_000, 60, 60, 5_000, 125)
        assert not tx.v2g.resettle_record(unsettled, T0, last_wh=52_000)  # never settled: its stop settles it
        tx.v2g.save_record(ExportRecord(booking, 50_000, 52_000, 60, 60, 2_000, 50), T0)
        later = ExportRecord(booking, 50_000, 55_000, 60, 60, 5_000, 125)
        settled = ExportRecord(booking, 50_000, 52_000, 60, 60, 2_000, 50)
        tx.v2g.save_record(ExportRecord(booking, 50_000, 55_000, 60, 60), T0)  # read before it settled
        assert tx.v2g.record(booking) == settled  # a settled record stands
        assert tx.v2g.resettle_record(later, T0 + timedelta(minutes=5), last_wh=52_000)
        assert not tx.v2g.resettle_record(later, T0 + timedelta(minutes=6), last_wh=52_000)  # taken up
        assert not tx.v2g.resettle_record(ExportRecord(9_999, 0, 1, None, None, 1, 0), T0, last_wh=0)
    with app.store.reading() as tx:
        assert tx.v2g.record(booking) == later


def test_holding_a_bookings_export_changes_nothing_of_it(app: App) -> None:
    """`lock_export` only makes writers take turns (tests/integration/test_v2g_export_start_race.py):
    on a booking with terms or without, the unit goes on and reads and writes as before."""
    with app.store.transaction() as tx:
        _, (connector,) = a_charger(tx, "CP-V2G-LOCK")
        driver = tx.accounts.add_driver("Lee", "LEE-TAG")
        booking = a_booking(tx, connector, driver)
        plain = a_booking(tx, connector, driver, start_h=2)
        tx.v2g.set_terms(ExportTerms(booking, 25, 40, T0))
    with app.store.transaction() as tx:
        tx.v2g.lock_export(booking)
        tx.v2g.lock_export(plain)
        tx.v2g.lock_export(booking)  # twice in one unit
        tx.v2g.save_record(ExportRecord(booking, 1_000, 1_200, 80), T0)
    with app.store.reading() as tx:
        assert tx.v2g.terms(booking) == ExportTerms(booking, 25, 40, T0)
        assert tx.v2g.record(booking) == ExportRecord(booking, 1_000, 1_200, 80)
        assert tx.v2g.record(plain) is None
