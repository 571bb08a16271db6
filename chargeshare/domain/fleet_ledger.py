"""A fleet's money in the double-entry ledger: charges on account, hosts' penalties, invoices, payments.

Two accounts per fleet keep billed apart from not yet billed: a charge on account (or a penalty
credited to the fleet) lands in `fleet:<id>:unbilled`; the month's invoice moves its total to
`fleet:<id>:receivable`; a payment clears the receivable into the platform's bank. So the
receivable's balance is always what was invoiced less what was paid.
"""

from __future__ import annotations

from datetime import datetime

from chargeshare.domain.errors import LedgerError
from chargeshare.domain.ledger import (
    PLATFORM_BANK,
    PLATFORM_CLEARING,
    PLATFORM_REVENUE,
    VAT_PAYABLE,
    EntryKind,
    JournalEntry,
    Posting,
    account_owner,
    host_payable,
)
from chargeshare.domain.money import FeeSplit, Pence


def fleet_unbilled(fleet_id: int) -> str:
    return f"fleet:{fleet_id}:unbilled"


def fleet_receivable(fleet_id: int) -> str:
    return f"fleet:{fleet_id}:receivable"


def receivable_fleet(account: str) -> int | None:
    """The fleet whose receivable account this is, or None for any other account."""
    return account_owner(account, "fleet", "receivable")


def charge_on_account(
    *,
    entry_id: str,
    split_id: str,
    booking_id: int,
    fleet_id: int,
    host_id: int,
    amount: Pence,
    split: FeeSplit,
    at: datetime,
) -> tuple[JournalEntry, JournalEntry]:
    """The fleet owes `amount` (not yet billed), split as a card capture would be."""
    if amount < 0:
        raise LedgerError("a charge on account cannot be negative")
    if split.total != amount:
        raise LedgerError(f"split {split} does not add up to the charge {amount}")
    charge = JournalEntry(
        entry_id,
        EntryKind.ON_ACCOUNT,
        (Posting(fleet_unbilled(fleet_id), amount), Posting(PLATFORM_CLEARING, -amount)),
        at,
        booking_id,
    )
    postings = [
        Posting(PLATFORM_CLEARING, amount),
        Posting(host_payable(host_id), -split.host_share),
        Posting(PLATFORM_REVENUE, -split.platform_revenue),
    ]
    if split.vat:
        postings.append(Posting(VAT_PAYABLE, -split.vat))
    return charge, JournalEntry(split_id, EntryKind.SPLIT, tuple(postings), at, booking_id)


def host_penalty(
    entry_id: str, *, booking_id: int, host_id: int, fleet_id: int, amount: Pence, at: datetime
) -> JournalEntry:
    """A host's late cancellation: its payable shrinks and the fleet's unbilled balance is credited."""
    if amount <= 0:
        raise LedgerError("a penalty must be for a positive amount")
    return JournalEntry(
        entry_id,
        EntryKind.FLEET_PENALTY,
        (Posting(host_payable(host_id), amount), Posting(fleet_unbilled(fleet_id), -amount)),
        at,
        booking_id,
    )


def invoice_entry(entry_id: str, *, fleet_id: int, total: Pence, at: datetime) -> JournalEntry | None:
    """Bill the invoice's total: unbilled to receivable (a credit note when the total is negative)."""
    if total == 0:
        return None
    postings = (Posting(fleet_receivable(fleet_id), total), Posting(fleet_unbilled(fleet_id), -total))
    return JournalEntry(entry_id, EntryKind.INVOICE, postings, at, None)


def payment_entry(entry_id: str, *, fleet_id: int, amount: Pence, at: datetime) -> JournalEntry | None:
    """The fleet paid `amount` of an invoice (a negative amount: the platform refunded a credit)."""
    if amount == 0:
        return None
    postings = (Posting(PLATFORM_BANK, amount), Posting(fleet_receivable(fleet_id), -amount))
    return JournalEntry(entry_id, EntryKind.INVOICE_PAID, postings, at, None)
