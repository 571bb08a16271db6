"""A guest's export sold to the host's home: the ledger entry that credits the driver and charges
the host's payable, and the invariants that hold both buyers (one per booking, the credit as due,
a host's payouts within its earnings less its home's purchases)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.errors import LedgerError
from chargeshare.domain.ledger import (
    GRID_EXPORT_BUYER,
    PLATFORM_CLEARING,
    EntryKind,
    JournalEntry,
    Posting,
    driver_export_credit,
    export_buyer_account,
    export_credit_entry,
    home_export_credit_entry,
    host_payable,
    payout,
    posted_balances,
)
from chargeshare.domain.v2g import ExportRecord, ExportTerms
from chargeshare.services.invariants import (
    Snapshot,
    export_charged_to_one_buyer,
    export_credit_matches_export,
    export_payouts_within_credits,
    grid_buyer_owes_unsettled_exports,
    payouts_within_earnings,
)
from chargeshare.services.records import BookingRecord
from chargeshare.services.rules import MarketplaceRules
from tests.conftest import T0

HOST, DRIVER = 5, 3


def booking(booking_id: int, host_id: int = HOST) -> BookingRecord:
    return BookingRecord(
        booking_id=booking_id,
        driver_id=DRIVER,
        connector_id=1,
        charger_id=1,
        host_id=host_id,
        starts_at=T0,
        ends_at=T0 + timedelta(hours=2),
        status=BookingStatus.COMPLETED,
        max_energy_wh=10_000,
        price_per_kwh=30,
        hold_amount=330,
        payment_ref=None,
        created_at=T0,
    )


def snap(entries: list[JournalEntry], bookings: list[BookingRecord] | None = None) -> Snapshot:
    return Snapshot(
        bookings if bookings is not None else [booking(7)],
        [],
        entries,
        {},
        MarketplaceRules(),
        export_terms=[ExportTerms(7, 25, 40, T0)],
        export_records=[ExportRecord(7, 50_000, 52_000, None, None, 2_000, 50)],
    )


@given(st.integers(min_value=1, max_value=10**9))
def test_a_home_credit_moves_the_host_payable_to_the_driver_and_balances(amount: int) -> None:
    e = home_export_credit_entry("export-7", 7, DRIVER, HOST, amount, T0)
    assert e.kind is EntryKind.HOME_EXPORT_CREDIT and e.amount == amount
    assert posted_balances([e]) == {host_payable(HOST): amount, driver_export_credit(DRIVER): -amount}
    assert export_buyer_account(e) == host_payable(HOST)
    assert export_buyer_account(export_credit_entry("export-7", 7, DRIVER, amount, T0)) == GRID_EXPORT_BUYER


def test_a_home_credit_must_be_positive() -> None:
    with pytest.raises(LedgerError):
        home_export_credit_entry("export-7", 7, DRIVER, HOST, 0, T0)


@pytest.mark.parametrize("home", [False, True])
def test_the_credit_matches_the_export_for_either_buyer(home: bool) -> None:
    entry = (
        home_export_credit_entry("export-7", 7, DRIVER, HOST, 50, T0)
        if home
        else export_credit_entry("export-7", 7, DRIVER, 50, T0)
    )
    s = snap([entry])
    assert export_credit_matches_export(s).ok
    assert export_charged_to_one_buyer(s).ok
    assert export_payouts_within_credits(s).ok
    assert grid_buyer_owes_unsettled_exports(s).ok
    short = (
        home_export_credit_entry("export-7", 7, DRIVER, HOST, 49, T0)
        if home
        else export_credit_entry("export-7", 7, DRIVER, 49, T0)
    )
    assert not export_credit_matches_export(snap([short])).ok


def test_a_booking_export_split_between_the_grid_and_the_home_is_caught() -> None:
    split = [
        export_credit_entry("export-7", 7, DRIVER, 30, T0),
        home_export_credit_entry("export-7:52000-53000", 7, DRIVER, HOST, 20, T0),
    ]
    result = export_charged_to_one_buyer(snap(split))
    assert not result.ok
    assert result.failures == (f"booking 7: export charged to {GRID_EXPORT_BUYER}, {host_payable(HOST)}",)


def test_a_home_credit_charged_to_another_host_is_caught() -> None:
    other = home_export_credit_entry("export-7", 7, DRIVER, 6, 50, T0)
    result = export_charged_to_one_buyer(snap([other]))
    assert not result.ok and "charges host:6:payable, not host:5:payable" in result.failures[0]


def test_a_host_is_never_paid_out_what_its_home_bought() -> None:
    postings = (Posting(PLATFORM_CLEARING, 100), Posting(host_payable(HOST), -100))
    earned = JournalEntry("split-1", EntryKind.SPLIT, postings, T0, 1)
    bought = home_export_credit_entry("export-7", 7, DRIVER, HOST, 50, T0)
    # Only what is left of its earnings may be paid: 100 - 50.
    assert payouts_within_earnings(snap([earned, bought, payout("payout:5:1", HOST, 50, T0)])).ok
    assert not payouts_within_earnings(snap([earned, bought, payout("payout:5:1", HOST, 100, T0)])).ok


def test_every_entry_kind_fits_the_ledgers_kind_column() -> None:
    assert max(len(k.value) for k in EntryKind) <= 16  # journal_entries.kind is VARCHAR(16)


def test_a_payout_written_before_a_home_purchase_at_its_instant_paid_what_was_owed() -> None:
    """Both lock the host's row before reading the clock, so at one instant the order written is
    the order they happened: the payout paid the 680p owed, the purchase then left the host owing."""
    postings = (Posting(PLATFORM_CLEARING, 680), Posting(host_payable(HOST), -680))
    earned = JournalEntry("split-1", EntryKind.SPLIT, postings, T0 - timedelta(hours=1), 1)
    paid = payout("payout:5:1", HOST, 680, T0)
    bought = home_export_credit_entry("export-7", 7, DRIVER, HOST, 83, T0)
    assert payouts_within_earnings(snap([earned, paid, bought])).failures == ()
    # Written the other way round, the payout was made against 597p owed.
    result = payouts_within_earnings(snap([earned, bought, paid]))
    assert result.failures == (f"{host_payable(HOST)}: payout:5:1 paid 680p of 597p owed",)


def test_payouts_are_checked_in_time_order_whatever_order_the_entries_come_in() -> None:
    postings = (Posting(PLATFORM_CLEARING, 100), Posting(host_payable(HOST), -100))
    earned = JournalEntry("split-1", EntryKind.SPLIT, postings, T0, 1)
    late = payout("payout:5:1", HOST, 100, T0 + timedelta(hours=1))
    early = payout("payout:5:0", HOST, 100, T0 - timedelta(hours=1))
    assert payouts_within_earnings(snap([late, earned])).ok
    assert not payouts_within_earnings(snap([earned, early])).ok
