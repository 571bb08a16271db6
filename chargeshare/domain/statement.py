"""A host's yearly income statement, in the figures UK digital platform reporting asks for.

HMRC's rules (the OECD model rules) want, per seller and calendar quarter: the consideration paid or
credited for relevant activities, the fees and commissions the platform withheld, and the number of
activities. Here one activity is one booking that earned something; gross consideration is what its
driver paid (captures), the fee is the platform's VAT-inclusive cut, and what the rules call the
consideration is the rest, credited to the host (`net_paid`). All in integer pence.

Quarters and years are the UK's calendar (Europe/London): an amount counts in the quarter of the
local date it was credited on. A year's ends fall in winter, on GMT, so a UK year holds the same
instants as the UTC year; the spring, summer and autumn quarter ends are an hour earlier in UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from chargeshare.domain.availability import UK
from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.ledger import EntryKind, JournalEntry, Posting, payable_host
from chargeshare.domain.money import Pence

QUARTERS = (1, 2, 3, 4)
FIRST_YEAR, LAST_YEAR = 2000, 2999


@dataclass(frozen=True)
class Earning:
    """What one SPLIT entry says about one host: the driver paid `consideration`, the host kept `share`."""

    booking_id: int
    at: datetime
    consideration: Pence
    host_share: Pence

    @property
    def fee(self) -> Pence:
        return self.consideration - self.host_share


@dataclass(frozen=True)
class QuarterFigures:
    quarter: int
    gross_consideration: Pence
    fees_withheld: Pence
    net_paid: Pence  # consideration less fees: what the host is owed for the quarter
    activities: int


@dataclass(frozen=True)
class YearStatement:
    host_id: int
    year: int
    quarters: tuple[QuarterFigures, ...]

    @property
    def gross_consideration(self) -> Pence:
        return sum(q.gross_consideration for q in self.quarters)

    @property
    def fees_withheld(self) -> Pence:
        return sum(q.fees_withheld for q in self.quarters)

    @property
    def net_paid(self) -> Pence:
        return sum(q.net_paid for q in self.quarters)

    @property
    def activities(self) -> int:
        return sum(q.activities for q in self.quarters)


def earnings_of(host_id: int, entries: Iterable[JournalEntry]) -> list[Earning]:
    """The host's earnings, one per SPLIT entry crediting their payable account."""
    return earnings_by_host(entries).get(host_id, [])


def earnings_by_host(entries: Iterable[JournalEntry]) -> dict[int, list[Earning]]:
    """Every host's earnings from one pass over the journal: a SPLIT entry of a booking is what its
    driver paid (the entry's debits) and what of it the host keeps (the credit to their account)."""
    out: dict[int, list[Earning]] = {}
    for e in entries:
        if e.kind is not EntryKind.SPLIT or e.booking_id is None:
            continue
        shares: dict[int, Pence] = {}
        for p in e.postings:
            host = payable_host(p.account)
            if host is not None:
                shares[host] = shares.get(host, 0) - p.amount
        for host, share in shares.items():
            out.setdefault(host, []).append(Earning(e.booking_id, e.created_at, _debits(e.postings), share))
    return out


def _debits(postings: Iterable[Posting]) -> Pence:
    return sum(p.amount for p in postings if p.amount > 0)


def year_and_quarter(at: datetime) -> tuple[int, int]:
    """The UK calendar year and quarter (1-4) of the local date an instant falls on."""
    local = at.astimezone(UK)
    return local.year, (local.month - 1) // 3 + 1


def quarter_of(at: datetime) -> int:
    return year_and_quarter(at)[1]


def year_statement(host_id: int, year: int, earnings: Iterable[Earning]) -> YearStatement:
    """Quarterly figures for `year` (UK calendar quarters). A booking settled in several steps counts
    as one activity, in the quarter of its first earning."""
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise InvalidRequest(f"year must be between {FIRST_YEAR} and {LAST_YEAR}")
    gross = dict.fromkeys(QUARTERS, 0)
    share = dict.fromkeys(QUARTERS, 0)
    first_quarter: dict[int, int] = {}
    for e in sorted(earnings, key=lambda x: (x.at, x.booking_id)):
        in_year, q = year_and_quarter(e.at)
        if in_year != year:
            continue
        gross[q] += e.consideration
        share[q] += e.host_share
        if e.consideration > 0:
            first_quarter.setdefault(e.booking_id, q)
    counted = dict.fromkeys(QUARTERS, 0)
    for q in first_quarter.values():
        counted[q] += 1
    return YearStatement(
        host_id,
        year,
        tuple(QuarterFigures(q, gross[q], gross[q] - share[q], share[q], counted[q]) for q in QUARTERS),
    )
