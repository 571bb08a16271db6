"""Fleet-share hubs: a business account's recurring blocks on hosts' chargers, their contract's
cancellation policy, and the monthly invoice of what the fleet charged on account.

A block rule is written in UK wall-clock time (weekdays 20:00-06:00) and expanded into concrete
UTC periods across the clock changes. Wall times that do not exist (the hour skipped in March)
map to the instant the clocks went forward; wall times that happen twice (the hour repeated in
October) map to their first occurrence. Both choices keep the mapping from wall time to instant
non-decreasing, so occurrences expanded from one rule never overlap one another.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from chargeshare.domain.errors import InvalidField
from chargeshare.domain.instants import EARLIEST, LATEST, RANGE
from chargeshare.domain.money import Pence, Wh

UK = ZoneInfo("Europe/London")
# A contract is expanded up front, so its length is bounded: a year of nightly blocks is 366 rows.
MAX_CONTRACT_DAYS = 366
WEEKDAYS = frozenset(range(5))  # Monday = 0


@dataclass(frozen=True)
class FleetAccount:
    """A business customer. `driver_id` is the identity its vehicles charge under (their card tag),
    so its bookings and sessions are ordinary ones; what differs is who pays and how."""

    fleet_id: int
    name: str
    driver_id: int


def wall_to_utc(day: date, at: time, zone: ZoneInfo = UK) -> datetime:
    """The instant a wall clock in `zone` reads `at` on `day` (see the module's note on gaps and folds)."""
    naive = datetime.combine(day, at)
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first
    # In a gap: search for the jump between the instant before it and the one after it.
    lo = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    hi = first
    after = hi.astimezone(zone).utcoffset()
    while hi - lo > timedelta(microseconds=1):
        mid = lo + (hi - lo) // 2
        if mid.astimezone(zone).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return hi


@dataclass(frozen=True)
class BlockRule:
    """Weekdays (Monday = 0) from `start` to `end` UK wall time; an `end` at or before `start`
    ends on the next day. `first_day` and `last_day` bound the days a block starts on (inclusive)."""

    weekdays: frozenset[int]
    start: time
    end: time
    first_day: date
    last_day: date

    def __post_init__(self) -> None:
        if not self.weekdays or not self.weekdays <= frozenset(range(7)):
            raise InvalidField("weekdays", "give one or more of 0 (Monday) to 6 (Sunday)")
        if self.start == self.end:
            raise InvalidField("end", "a block must not start and end at the same time")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise InvalidField("start", "block times are UK wall-clock times, without a zone")
        if any(t.second or t.microsecond for t in (self.start, self.end)):
            raise InvalidField("start", "block times are whole minutes")
        if not (EARLIEST.date() <= self.first_day and self.last_day < LATEST.date()):
            raise InvalidField("first_day", f"days must lie {RANGE}")
        if self.last_day < self.first_day:
            raise InvalidField("last_day", "must not be before first_day")
        if (self.last_day - self.first_day).days >= MAX_CONTRACT_DAYS:
            raise InvalidField("last_day", f"a contract spans at most {MAX_CONTRACT_DAYS} days")

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def days(self) -> list[date]:
        """The days a block starts on."""
        span = (self.last_day - self.first_day).days + 1
        every = (self.first_day + timedelta(days=n) for n in range(span))
        return [d for d in every if d.weekday() in self.weekdays]

    def occurrences(self) -> list[tuple[datetime, datetime]]:
        """The blocks as UTC periods, in order. A block whose whole window falls in the hour the
        clocks skip does not exist that day and is left out."""
        out = []
        for day in self.days():
            starts_at = wall_to_utc(day, self.start)
            ends_at = wall_to_utc(day + timedelta(days=1) if self.crosses_midnight else day, self.end)
            if ends_at > starts_at:
                out.append((starts_at, ends_at))
        return out


@dataclass(frozen=True)
class ContractPolicy:
    """What a host owes the fleet for cancelling a block occurrence: nothing with at least
    `notice` before it starts, `late_penalty` pence inside the notice."""

    notice: timedelta = timedelta(hours=72)
    late_penalty: Pence = 2_000

    def __post_init__(self) -> None:
        if self.notice < timedelta(0):
            raise InvalidField("notice_hours", "cannot be negative")
        if self.late_penalty < 0:
            raise InvalidField("late_penalty", "cannot be negative")

    def host_cancellation_penalty(self, now: datetime, starts_at: datetime) -> Pence:
        """An occurrence already begun is inside any notice."""
        return 0 if starts_at - now >= self.notice else self.late_penalty


class LineKind(StrEnum):
    SESSION = "session"  # energy charged under a block occurrence
    FEE = "fee"  # a no-show or late-cancellation fee under a block occurrence
    PENALTY = "penalty"  # a host's late cancellation: a credit to the fleet


@dataclass(frozen=True)
class InvoiceLine:
    entry_id: str  # the ledger entry it bills: each entry is billed on one invoice only
    booking_id: int
    kind: LineKind
    at: datetime
    amount: Pence  # a credit is negative
    energy_wh: Wh = 0


@dataclass(frozen=True)
class Invoice:
    fleet_id: int
    month: str  # "YYYY-MM", the UK calendar month
    lines: tuple[InvoiceLine, ...]

    @property
    def total(self) -> Pence:
        return sum(line.amount for line in self.lines)


MIN_YEAR, MAX_YEAR = 1900, 8999  # the months an invoice can be for


def parse_month(month: str) -> tuple[int, int]:
    try:
        year, mon = (int(part) for part in month.split("-"))
        date(year, mon, 1)
    except ValueError:
        raise InvalidField("month", "give a month as YYYY-MM") from None
    if len(month) != 7:
        raise InvalidField("month", "give a month as YYYY-MM")
    if not MIN_YEAR <= year <= MAX_YEAR:
        # The month's end is the next month's start: 9999-12 would end past the calendar.
        raise InvalidField("month", f"give a year from {MIN_YEAR} to {MAX_YEAR}")
    return year, mon


def month_end(month: str) -> datetime:
    """The instant a UK calendar month ends (the next month's first midnight, UK time)."""
    year, mon = parse_month(month)
    following = date(year + mon // 12, mon % 12 + 1, 1)
    return wall_to_utc(following, time(0))


def month_of(at: datetime) -> str:
    return at.astimezone(UK).strftime("%Y-%m")


def invoice_for(fleet_id: int, month: str, unbilled: Iterable[InvoiceLine]) -> Invoice:
    """The month's invoice: every line not yet billed from before the month's end, oldest first
    (a session settled late is billed on the next invoice rather than lost)."""
    end = month_end(month)
    lines = sorted((x for x in unbilled if x.at < end), key=lambda x: (x.at, x.entry_id))
    return Invoice(fleet_id, month, tuple(lines))


def overlapping(
    wanted: Sequence[tuple[datetime, datetime]], taken: Sequence[tuple[datetime, datetime]]
) -> list[int]:
    """Indexes of the `wanted` periods that overlap any `taken` one (half-open periods)."""
    out = []
    for n, (start, end) in enumerate(wanted):
        if any(s < end and start < e for s, e in taken):
            out.append(n)
    return out


@dataclass(frozen=True)
class FleetContract:
    """A fleet's block contract: one rule on several connectors (across hosts), one policy."""

    contract_id: int
    fleet_id: int
    rule: BlockRule
    policy: ContractPolicy
    connector_ids: tuple[int, ...]
    created_at: datetime


@dataclass(frozen=True)
class Occurrence:
    """One block on one connector: a booking of the fleet's, paid on account."""

    booking_id: int
    contract_id: int
    fleet_id: int


@dataclass(frozen=True)
class SeenRequest:
    """A fleet's request made under an Idempotency-Key: what was asked, and what it made (the
    invoice paid and what had been paid of it after, or the contract booked)."""

    fingerprint: str
    ref_id: int | None
    value: int | None
    made_at: datetime


@dataclass(frozen=True)
class IssuedInvoice:
    invoice_id: int
    fleet_id: int
    month: str
    total: Pence
    issued_at: datetime
    paid: Pence = 0
    paid_at: datetime | None = None

    @property
    def outstanding(self) -> Pence:
        return self.total - self.paid
