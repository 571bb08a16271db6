"""Booking lifecycle as a transition table, and the overlap rule the store enforces."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from chargeshare.domain.errors import InvalidRequest, InvalidTransition
from chargeshare.domain.money import Pence


class BookingStatus(StrEnum):
    REQUESTED = "requested"
    CONFIRMED = "confirmed"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"


class BookingEvent(StrEnum):
    HOLD_PLACED = "hold_placed"
    HOLD_DECLINED = "hold_declined"
    SESSION_STARTED = "session_started"
    SESSION_STOPPED = "session_stopped"
    CANCEL = "cancel"
    NO_SHOW = "no_show"
    RESERVATION_REJECTED = "reservation_rejected"
    WALK_IN = "walk_in"  # a token charging without a booking: its booking is made as it starts


B, E = BookingStatus, BookingEvent

TRANSITIONS: dict[tuple[BookingStatus, BookingEvent], BookingStatus] = {
    (B.REQUESTED, E.HOLD_PLACED): B.CONFIRMED,
    (B.REQUESTED, E.HOLD_DECLINED): B.FAILED,
    (B.REQUESTED, E.CANCEL): B.CANCELLED,
    (B.REQUESTED, E.WALK_IN): B.ACTIVE,
    (B.CONFIRMED, E.SESSION_STARTED): B.ACTIVE,
    (B.CONFIRMED, E.CANCEL): B.CANCELLED,
    (B.CONFIRMED, E.NO_SHOW): B.EXPIRED,
    (B.CONFIRMED, E.RESERVATION_REJECTED): B.FAILED,
    (B.ACTIVE, E.SESSION_STOPPED): B.COMPLETED,
}

# States that occupy the connector's time: two of these may never overlap on one connector.
LIVE_STATES: frozenset[BookingStatus] = frozenset({B.REQUESTED, B.CONFIRMED, B.ACTIVE, B.COMPLETED})
FINAL_STATES: frozenset[BookingStatus] = frozenset({B.COMPLETED, B.CANCELLED, B.EXPIRED, B.FAILED})


class Party(StrEnum):
    DRIVER = "driver"
    HOST = "host"


@dataclass(frozen=True)
class CancellationPolicy:
    """What a driver pays when a booking ends unused. Hosts cancelling never cost the driver anything."""

    late_cancel_minutes: int = 30  # a driver cancelling this close to the start pays the late fee
    late_cancel_fee: Pence = 150
    no_show_fee: Pence = 300
    no_show_grace_minutes: int = 15

    def cancellation_fee(self, by: Party, now: datetime, starts_at: datetime, hold: Pence) -> Pence:
        if by is Party.HOST or now < starts_at - timedelta(minutes=self.late_cancel_minutes):
            return 0
        return min(self.late_cancel_fee, hold)

    def no_show_charge(self, hold: Pence, *, excused: bool = False) -> Pence:
        """Nothing when the driver is excused: another driver's session held the connector while
        this one was due to arrive, or its charger was offline (nobody could tell)."""
        return 0 if excused else min(self.no_show_fee, hold)


# A walk-in's booking has no hold: its cost is charged to the driver's card at the end, afresh.
# Nothing else holds nothing (a booking whose hold would be nothing is refused).
WALK_IN_HOLD: Pence = 0


def is_walk_in(hold_amount: Pence) -> bool:
    return hold_amount == WALK_IN_HOLD


# The shortest a booking may last (a period cannot be empty): what is left of one whose session
# stopped within the instant it began.
LEAST_PERIOD = timedelta(microseconds=1)


def walk_in_period(
    at: datetime, length: timedelta, taken: Iterable[tuple[datetime, datetime]], *, replayed: bool
) -> tuple[datetime, datetime] | None:
    """The period a walk-in's booking holds on its connector: from its start's own instant `at` for
    `length`, among the periods live bookings hold there (`taken`). A walk-in starting now is
    refused (None) where one of them overlaps that time. A `replayed` one (the charger started it
    while offline and tells us now) has charged already and is never refused for the calendar: it
    holds the free time from `at` up to the next booking; where a booking holds `at` itself (the
    offline charger let it charge in someone's booked time) it begins where that booking ends,
    lasting at least LEAST_PERIOD, so the energy has a booking to be billed on."""
    end = at + length
    periods = sorted((s, e) for s, e in taken if e > at)
    if not any(overlaps(s, e, at, end) for s, e in periods):
        return at, end
    if not replayed:
        return None
    start = at
    for s, e in periods:
        if s > start:
            break
        start = max(start, e)
    following = [s for s, _ in periods if s > start]
    return start, min([max(end, start + LEAST_PERIOD), *following])


def next_status(current: BookingStatus, event: BookingEvent) -> BookingStatus:
    try:
        return TRANSITIONS[(current, event)]
    except KeyError:
        raise InvalidTransition(f"booking cannot go from {current} on {event}") from None


def check_period(starts_at: datetime, ends_at: datetime) -> None:
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise InvalidRequest("booking times must be timezone-aware")
    if ends_at <= starts_at:
        raise InvalidRequest("a booking must end after it starts")


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    """Half-open periods [start, end): touching ends do not overlap."""
    return a_start < b_end and b_start < a_end
