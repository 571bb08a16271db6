"""A host's yearly income statement, in the figures UK digital platform reporting asks for.

HMRC's rules (the OECD model rules) want, per seller and calendar quarter: the consideration paid or
credited for relevant activities, the fees and commissions the platform withheld, and the number of
activities. Here one activity is one booking that earned something; consideration is what its driver
paid (captures), the fee is the platform's VAT-inclusive cut. All in integer pence.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.ledger import EntryKind, JournalEntry, Posting, host_payable
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
    account = host_payable(host_id)
    out = []
    for e in entries:
        mine = [p.amount for p in e.postings if p.account == account]
        if e.kind is EntryKind.SPLIT and e.booking_id is not None and mine:
            out.append(Earning(e.booking_id, e.created_at, _debits(e.postings), -sum(mine)))
    return out


def _debits(postings: Iterable[Posting]) -> Pence:
    return sum(p.amount for p in postings if p.amount > 0)


def quarter_of(at: datetime) -> int:
    return (at.astimezone(UTC).month - 1) // 3 + 1


def year_statement(host_id: int, year: int, earnings: Iterable[Earning]) -> YearStatement:
    """Quarterly figures for `year` (UTC calendar quarters). A booking settled in several steps counts
    as one activity, in the quarter of its first earning."""
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise InvalidRequest(f"year must be between {FIRST_YEAR} and {LAST_YEAR}")
    gross = dict.fromkeys(QUARTERS, 0)
    share = dict.fromkeys(QUARTERS, 0)
    first_quarter: dict[int, int] = {}
    for e in sorted(earnings, key=lambda x: (x.at, x.booking_id)):
        if e.at.astimezone(UTC).year != year:
            continue
        q = quarter_of(e.at)
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
