"""Does a platform report agree with the books? Each seller's reported figures are checked against
the journal read another way: posting by posting on the host's payable account, not entry by entry
as the report reads it.

- consideration: per quarter, what was credited to the host's account equals the consideration
  reported (a credit by anything but a booking's SPLIT, or one the report missed, shows here);
- fees: per quarter, what the drivers of the host's bookings paid (their CAPTURE entries), less what
  reached the host, equals the fees reported;
- payouts: what the host was owed at the year's start, plus the consideration reported, less the
  payouts made in the year and what its home bought of its guests' V2G export (not consideration:
  a purchase by the host, charged to its account), equals what they are owed at its end; and
  payouts never took more than was credited (a home's purchases alone may leave the host owing).

An empty list means the report reconciles.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from chargeshare.domain.availability import UK
from chargeshare.domain.ledger import EntryKind, JournalEntry, payable_host
from chargeshare.domain.money import Pence, format_gbp
from chargeshare.domain.platform_reporting import PlatformReport
from chargeshare.domain.statement import QUARTERS, year_and_quarter


@dataclass(frozen=True)
class Discrepancy:
    host_id: int
    check: str  # consideration | fees | payouts
    quarter: int | None  # None: the whole year
    reported: Pence
    ledger: Pence
    detail: str

    def __str__(self) -> str:
        when = "the year" if self.quarter is None else f"Q{self.quarter}"
        return (
            f"host {self.host_id}, {self.check} in {when}: reported {format_gbp(self.reported)}, "
            f"the ledger says {format_gbp(self.ledger)} ({self.detail})"
        )


@dataclass
class _Books:
    """One host's movements as the postings tell them."""

    credited: dict[int, Pence]  # quarter -> credits to the payable account
    captured: dict[int, Pence]  # quarter -> what drivers paid for the host's bookings
    owed_before: Pence = 0  # the payable balance at the year's start (a liability: credits)
    owed_after: Pence = 0  # ... at its end
    paid_out: Pence = 0  # PAYOUT entries in the year
    bought: Pence = 0  # HOME_EXPORT_CREDIT entries in the year: the host's home bought export
    bought_to_end: Pence = 0  # ... up to the year's end


def _books(year: int, entries: list[JournalEntry]) -> dict[int, _Books]:
    start = datetime(year, 1, 1, tzinfo=UK)
    end = datetime(year + 1, 1, 1, tzinfo=UK)
    books: dict[int, _Books] = defaultdict(
        lambda: _Books(dict.fromkeys(QUARTERS, 0), dict.fromkeys(QUARTERS, 0))
    )
    host_of_booking: dict[int, int] = {}
    for e in entries:
        in_year, quarter = year_and_quarter(e.created_at)
        for p in e.postings:
            host = payable_host(p.account)
            if host is None:
                continue
            b = books[host]
            if e.booking_id is not None:
                host_of_booking[e.booking_id] = host
            if e.created_at < start:
                b.owed_before -= p.amount
            if e.created_at < end:
                b.owed_after -= p.amount
            if in_year == year and p.amount < 0:
                b.credited[quarter] -= p.amount
            if in_year == year and e.kind is EntryKind.PAYOUT and p.amount > 0:
                b.paid_out += p.amount
            if e.kind is EntryKind.HOME_EXPORT_CREDIT and e.created_at < end:
                b.bought_to_end += p.amount
                if in_year == year:
                    b.bought += p.amount
    for e in entries:
        host = host_of_booking.get(e.booking_id) if e.booking_id is not None else None
        in_year, quarter = year_and_quarter(e.created_at)
        if e.kind is EntryKind.CAPTURE and host is not None and in_year == year:
            books[host].captured[quarter] += e.amount
    return books


def reconcile(report: PlatformReport, entries: Iterable[JournalEntry]) -> list[Discrepancy]:
    """Every way `report` disagrees with the journal `entries`, by host, check and quarter."""
    books = _books(report.year, list(entries))
    reported = {s.host_id: s.figures for s in report.sellers}
    found: list[Discrepancy] = []
    for host in sorted(set(books) | set(reported)):
        b = books.get(host) or _Books(dict.fromkeys(QUARTERS, 0), dict.fromkeys(QUARTERS, 0))
        figures = reported.get(host)
        quarters = {q.quarter: q for q in figures.quarters} if figures is not None else {}
        for q in QUARTERS:
            net = quarters[q].net_paid if q in quarters else 0
            fees = quarters[q].fees_withheld if q in quarters else 0
            if net != b.credited[q]:
                found.append(
                    Discrepancy(host, "consideration", q, net, b.credited[q], "credits to the host's account")
                )
            if fees != b.captured[q] - b.credited[q]:
                found.append(
                    Discrepancy(
                        host,
                        "fees",
                        q,
                        fees,
                        b.captured[q] - b.credited[q],
                        "captured from drivers less credits",
                    )
                )
        total = sum(q.net_paid for q in quarters.values())
        expected_after = b.owed_before + total - b.paid_out - b.bought
        if expected_after != b.owed_after:
            found.append(
                Discrepancy(
                    host,
                    "payouts",
                    None,
                    expected_after,
                    b.owed_after,
                    f"owed at the start {format_gbp(b.owed_before)} + consideration - payouts "
                    f"{format_gbp(b.paid_out)} - home export bought {format_gbp(b.bought)} against "
                    "what is owed at the end",
                )
            )
        if b.owed_after + b.bought_to_end < 0:
            found.append(
                Discrepancy(host, "payouts", None, 0, b.owed_after, "paid out more than was credited")
            )
    return found
