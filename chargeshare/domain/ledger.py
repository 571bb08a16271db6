"""Double-entry ledger with two-phase holds, modelled on TigerBeetle's pending transfers.

Every journal entry's postings sum to zero (debits positive, credits negative). History is
immutable: a hold is never edited; it is resolved by a later CAPTURE or VOID entry that names it.
A capture posts at most the held amount (the remainder simply returns) and is linked with the
SPLIT entry that divides it between host and platform, so the two are written together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from chargeshare.domain.errors import LedgerError
from chargeshare.domain.money import FeeSplit, Pence

PLATFORM_CLEARING = "platform:clearing"
PLATFORM_REVENUE = "platform:revenue"
VAT_PAYABLE = "platform:vat_payable"
PLATFORM_BANK = "platform:bank"  # host payouts and drivers' export credits leave through here
PROCESSOR_FEES = "platform:processor_fees"  # what card processing costs the platform (an expense)
PROCESSOR_PAYABLE = "processor:withheld"  # the processor keeps its fee out of what it settles to us
GRID_EXPORT_BUYER = "grid:export_buyer"  # who buys a guest's exported energy (V2G): owes the platform


def driver_card(driver_id: int) -> str:
    return f"driver:{driver_id}:card"


def host_payable(host_id: int) -> str:
    return f"host:{host_id}:payable"


def driver_export_credit(driver_id: int) -> str:
    return f"driver:{driver_id}:export_credit"


def account_owner(account: str, kind: str, tail: str) -> int | None:
    """The id in an account named `<kind>:<id>:<tail>`, or None for any other account."""
    head, _, rest = account.partition(":")
    ident, _, end = rest.partition(":")
    return int(ident) if head == kind and end == tail and ident.isdigit() else None


def payable_host(account: str) -> int | None:
    """The host whose payable account this is, or None for any other account."""
    return account_owner(account, "host", "payable")


class EntryKind(StrEnum):
    HOLD = "hold"  # pending: the card is authorised for up to this amount
    CAPTURE = "capture"  # posts (part of) a hold
    VOID = "void"  # releases a hold in full
    EXPIRE = "expire"  # the provider let the authorisation lapse before capture
    SPLIT = "split"  # divides a capture between host payable, platform revenue and VAT
    PAYOUT = "payout"  # pays a host's payable balance out
    PROCESSOR_FEE = "processor_fee"  # the card processor's charge for a capture, borne by the platform
    ON_ACCOUNT = "on_account"  # a fleet's cost charged to its account, to be invoiced (no card)
    FLEET_PENALTY = "fleet_penalty"  # a host's late cancellation of a fleet block, owed to the fleet
    INVOICE = "invoice"  # a month's charges on account billed: unbilled -> receivable
    INVOICE_PAID = "invoice_paid"  # a fleet paid an invoice
    EXPORT_CREDIT = "export_credit"  # a guest's V2G export: owed to the driver by the grid buyer
    EXPORT_PAYOUT = "export_payout"  # pays a driver's export credit balance out
    GRID_SETTLEMENT = "grid_settlement"  # the grid buyer paid a month's export statement
    HOME_EXPORT_CREDIT = "export_to_home"  # a guest's V2G export sold to the host's home: the host owes it


RESOLUTIONS = frozenset({EntryKind.CAPTURE, EntryKind.VOID, EntryKind.EXPIRE})
# Entries that move money (holds and voids only reserve it).
POSTED_KINDS = frozenset(EntryKind) - {EntryKind.HOLD, EntryKind.VOID, EntryKind.EXPIRE}
# What credits a guest for a booking's export: sold to the grid buyer, or to the host's home.
EXPORT_CREDIT_KINDS = frozenset({EntryKind.EXPORT_CREDIT, EntryKind.HOME_EXPORT_CREDIT})
# What a booking's customer was charged: a card capture, or a fleet's charge on account.
CHARGED_KINDS = frozenset({EntryKind.CAPTURE, EntryKind.ON_ACCOUNT})


@dataclass(frozen=True)
class Posting:
    account: str
    amount: Pence  # debit > 0, credit < 0


@dataclass(frozen=True)
class JournalEntry:
    entry_id: str
    kind: EntryKind
    postings: tuple[Posting, ...]
    created_at: datetime
    booking_id: int | None  # None only for payouts and grid settlements, which span bookings
    pending_id: str | None = None  # for CAPTURE, VOID and EXPIRE: the HOLD they resolve

    def __post_init__(self) -> None:
        if not self.postings:
            raise LedgerError(f"entry {self.entry_id} has no postings")
        if sum(p.amount for p in self.postings) != 0:
            raise LedgerError(f"entry {self.entry_id} does not balance")
        if self.created_at.tzinfo is None:
            raise LedgerError("ledger times must be timezone-aware")
        if (self.kind in RESOLUTIONS) != (self.pending_id is not None):
            raise LedgerError(f"{self.kind} entry {self.entry_id} must name a hold iff it resolves one")

    @property
    def amount(self) -> Pence:
        """The size of the movement: the sum of its debits."""
        return sum(p.amount for p in self.postings if p.amount > 0)


def place_hold(entry_id: str, booking_id: int, driver_id: int, amount: Pence, at: datetime) -> JournalEntry:
    if amount <= 0:
        raise LedgerError("a hold must be for a positive amount")
    return JournalEntry(
        entry_id,
        EntryKind.HOLD,
        (Posting(driver_card(driver_id), amount), Posting(PLATFORM_CLEARING, -amount)),
        at,
        booking_id,
    )


def _check_unresolved(hold: JournalEntry, resolutions: Iterable[JournalEntry]) -> None:
    if hold.kind is not EntryKind.HOLD:
        raise LedgerError(f"entry {hold.entry_id} is not a hold")
    if any(r.pending_id == hold.entry_id for r in resolutions):
        raise LedgerError(f"hold {hold.entry_id} is already resolved")


def capture_and_split(
    hold: JournalEntry,
    resolutions: Iterable[JournalEntry],
    *,
    capture_id: str,
    split_id: str,
    amount: Pence,
    split: FeeSplit,
    host_id: int,
    at: datetime,
) -> tuple[JournalEntry, JournalEntry]:
    """Post `amount` of the hold and split it; the two entries are linked (stored atomically)."""
    _check_unresolved(hold, resolutions)
    if amount < 0 or amount > hold.amount:
        raise LedgerError(f"capture {amount} is outside the hold of {hold.amount}")
    if split.total != amount:
        raise LedgerError(f"split {split} does not add up to the capture {amount}")
    driver_account = hold.postings[0].account
    capture = JournalEntry(
        capture_id,
        EntryKind.CAPTURE,
        (Posting(driver_account, amount), Posting(PLATFORM_CLEARING, -amount)),
        at,
        hold.booking_id,
        pending_id=hold.entry_id,
    )
    postings = [
        Posting(PLATFORM_CLEARING, amount),
        Posting(host_payable(host_id), -split.host_share),
        Posting(PLATFORM_REVENUE, -split.platform_revenue),
    ]
    if split.vat:
        postings.append(Posting(VAT_PAYABLE, -split.vat))
    split_entry = JournalEntry(split_id, EntryKind.SPLIT, tuple(postings), at, hold.booking_id)
    return capture, split_entry


def void_hold(
    hold: JournalEntry,
    resolutions: Iterable[JournalEntry],
    *,
    void_id: str,
    at: datetime,
    kind: EntryKind = EntryKind.VOID,
) -> JournalEntry:
    """Release (VOID) or record the lapse (EXPIRE) of a hold: nothing moves, the reservation ends."""
    if kind not in (EntryKind.VOID, EntryKind.EXPIRE):
        raise LedgerError(f"{kind} does not end a hold without capture")
    _check_unresolved(hold, resolutions)
    # Mirrors the hold's postings: its "amount" is what returns to the driver.
    return JournalEntry(void_id, kind, hold.postings, at, hold.booking_id, pending_id=hold.entry_id)


def open_hold(entries: Iterable[JournalEntry]) -> JournalEntry | None:
    """The booking's hold that no entry has resolved yet (a booking may hold again after a lapse)."""
    entries = list(entries)
    resolved = {e.pending_id for e in entries if e.pending_id is not None}
    return next((e for e in entries if e.kind is EntryKind.HOLD and e.entry_id not in resolved), None)


def processor_fee(entry_id: str, booking_id: int, amount: Pence, at: datetime) -> JournalEntry | None:
    """The processor's fee for one capture, as an expense of the platform (never the host's)."""
    if amount < 0:
        raise LedgerError("a processor fee cannot be negative")
    if amount == 0:
        return None
    postings = (Posting(PROCESSOR_FEES, amount), Posting(PROCESSOR_PAYABLE, -amount))
    return JournalEntry(entry_id, EntryKind.PROCESSOR_FEE, postings, at, booking_id)


def payout(entry_id: str, host_id: int, amount: Pence, at: datetime) -> JournalEntry:
    if amount <= 0:
        raise LedgerError("a payout must be for a positive amount")
    return JournalEntry(
        entry_id,
        EntryKind.PAYOUT,
        (Posting(host_payable(host_id), amount), Posting(PLATFORM_BANK, -amount)),
        at,
        None,
    )


def export_credit_entry(
    entry_id: str, booking_id: int, driver_id: int, amount: Pence, at: datetime
) -> JournalEntry:
    """A booking's V2G export credited: the grid buyer owes it, the driver is owed it. Kept apart
    from the host's payable, so the host's earnings (and their platform report) are untouched."""
    if amount <= 0:
        raise LedgerError("an export credit must be for a positive amount")
    postings = (Posting(GRID_EXPORT_BUYER, amount), Posting(driver_export_credit(driver_id), -amount))
    return JournalEntry(entry_id, EntryKind.EXPORT_CREDIT, postings, at, booking_id)


def home_export_credit_entry(
    entry_id: str, booking_id: int, driver_id: int, host_id: int, amount: Pence, at: datetime
) -> JournalEntry:
    """A booking's V2G export sold to the host's home: the driver is credited and the host charged
    against its payable in the one entry, so it shows in the host's earnings as a deduction and a
    payout pays only what is left (a host owing more than it earned is paid nothing until later
    earnings cover the debit balance)."""
    if amount <= 0:
        raise LedgerError("an export credit must be for a positive amount")
    postings = (Posting(host_payable(host_id), amount), Posting(driver_export_credit(driver_id), -amount))
    return JournalEntry(entry_id, EntryKind.HOME_EXPORT_CREDIT, postings, at, booking_id)


def export_buyer_account(entry: JournalEntry) -> str | None:
    """The account an export credit charges (the one it debits): `grid:export_buyer` or a host's
    payable; None for an entry that is not an export credit."""
    if entry.kind not in EXPORT_CREDIT_KINDS:
        return None
    debits = {p.account for p in entry.postings if p.amount > 0}
    return debits.pop() if len(debits) == 1 else None


def export_payout(entry_id: str, driver_id: int, amount: Pence, at: datetime) -> JournalEntry:
    """A driver's export credits paid out, as a host's payable is: the platform pays now and is owed
    by the grid buyer until it settles the month's statement (`domain/grid_settlement.py`)."""
    if amount <= 0:
        raise LedgerError("an export payout must be for a positive amount")
    postings = (Posting(driver_export_credit(driver_id), amount), Posting(PLATFORM_BANK, -amount))
    return JournalEntry(entry_id, EntryKind.EXPORT_PAYOUT, postings, at, None)


def export_credit_driver(account: str) -> int | None:
    """The driver whose export credit account this is, or None for any other account."""
    return account_owner(account, "driver", "export_credit")


def posted_balances(entries: Iterable[JournalEntry]) -> dict[str, Pence]:
    """Balances from posted movements only (holds and voids reserve, they do not move money)."""
    balances: dict[str, Pence] = {}
    for e in entries:
        if e.kind in POSTED_KINDS:
            for p in e.postings:
                balances[p.account] = balances.get(p.account, 0) + p.amount
    return balances
