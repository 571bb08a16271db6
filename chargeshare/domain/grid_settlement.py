"""The grid buyer's settlement with the platform for guests' V2G export.

Each `EXPORT_CREDIT` entry debits `grid:export_buyer`: the buyer owes the platform what the platform
owes the driver. A statement lists the credits written in one UK calendar month; once the month is
over, the buyer pays it whole, and that payment is one `GRID_SETTLEMENT` entry (debit
`platform:bank`, credit `grid:export_buyer`) named by the month, so a month is settled once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time

from chargeshare.domain.errors import InvalidField, LedgerError
from chargeshare.domain.fleet import month_end, parse_month, wall_to_utc
from chargeshare.domain.ledger import (
    GRID_EXPORT_BUYER,
    PLATFORM_BANK,
    EntryKind,
    JournalEntry,
    Posting,
)
from chargeshare.domain.money import Pence, Wh

SETTLEMENT_PREFIX = "grid-settlement:"


def month_start(month: str) -> datetime:
    """The instant a UK calendar month begins (its first midnight, UK time)."""
    year, mon = parse_month(month)
    return wall_to_utc(date(year, mon, 1), time(0))


def settlement_entry_id(month: str) -> str:
    return f"{SETTLEMENT_PREFIX}{month}"


def settled_month(entry_id: str) -> str | None:
    """The month a settlement entry's id names, or None for any other id."""
    head, _, month = entry_id.partition(SETTLEMENT_PREFIX)
    return month if not head and month else None


@dataclass(frozen=True)
class StatementLine:
    """One booking's export credit, as the ledger holds it and as it was metered and priced."""

    entry_id: str
    booking_id: int
    at: datetime
    exported_wh: Wh
    price_per_kwh: int  # pence per kWh exported, the driver's terms
    amount: Pence


@dataclass(frozen=True)
class GridSettlement:
    """A month's statement paid by the grid buyer, as an operator recorded it."""

    month: str
    amount: Pence
    exports: int  # how many export credits the paid statement listed
    entry_id: str
    recorded_at: datetime
    recorded_by: int | None  # the operator's account; None from the command line


@dataclass(frozen=True)
class BuyerBalance:
    """`grid:export_buyer` over a period, from the ledger: owed at its start, the payments received
    in it, owed at its end (what is owed is a debit, so positive)."""

    opening: Pence
    received: Pence
    closing: Pence


@dataclass(frozen=True)
class GridStatement:
    month: str
    starts_at: datetime
    ends_at: datetime
    lines: tuple[StatementLine, ...]
    settlement: GridSettlement | None
    over: bool  # the month has ended: no credit can be written in it, so it may be paid
    balance: BuyerBalance

    @property
    def total(self) -> Pence:
        return sum(x.amount for x in self.lines)

    @property
    def reconciles(self) -> bool:
        """Owed at the end = owed at the start + the month's credits - payments received in it."""
        b = self.balance
        return b.closing == b.opening + self.total - b.received


def export_credits_in(entries: Iterable[JournalEntry], month: str) -> list[JournalEntry]:
    """The export credits written in the month, oldest first."""
    start, end = month_start(month), month_end(month)
    found = (e for e in entries if e.kind is EntryKind.EXPORT_CREDIT and start <= e.created_at < end)
    return sorted(found, key=lambda e: (e.created_at, e.entry_id))


def buyer_movement(entries: Iterable[JournalEntry]) -> Pence:
    """How far the entries move `grid:export_buyer` (a debit is what it comes to owe)."""
    return sum(p.amount for e in entries for p in e.postings if p.account == GRID_EXPORT_BUYER)


def buyer_balance(entries: Iterable[JournalEntry], start: datetime, end: datetime) -> BuyerBalance:
    """`grid:export_buyer`'s balance at `start` and at `end`, and the settlements received between."""
    entries = list(entries)
    received = -buyer_movement(
        e for e in entries if e.kind is EntryKind.GRID_SETTLEMENT and start <= e.created_at < end
    )
    opening = buyer_movement(e for e in entries if e.created_at < start)
    closing = buyer_movement(e for e in entries if e.created_at < end)
    return BuyerBalance(opening, received, closing)


def check_payment(month: str, owed: Pence, amount: Pence) -> None:
    """A payment settles a statement whole: nothing owed, or any other amount, is refused."""
    if owed <= 0:
        raise InvalidField("month", f"the grid buyer owes nothing for {month}: no export was credited")
    if amount != owed:
        raise InvalidField(
            "amount", f"the statement for {month} is {owed}p; a payment of {amount}p does not settle it"
        )


def settlement_entry(month: str, amount: Pence, at: datetime) -> JournalEntry:
    """The grid buyer's payment of the month's statement: its debt to the platform becomes cash."""
    if amount <= 0:
        raise LedgerError("a grid settlement must be for a positive amount")
    postings = (Posting(PLATFORM_BANK, amount), Posting(GRID_EXPORT_BUYER, -amount))
    return JournalEntry(settlement_entry_id(month), EntryKind.GRID_SETTLEMENT, postings, at, None)
