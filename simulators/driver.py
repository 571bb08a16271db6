"""The scripted driver, written once for both engines.

A driver arrives, searches the map around home, books the nearest free charger among the first few,
then charges, cancels or never turns up as its plan says: it waits for its slot, plugs in, waits until
the car is done or the booking ends, unplugs and looks for the receipt.

The script is sans-I/O: a plain generator that yields effects (`Sleep`, `Search`, `Book`, ...) and is
sent back their outcomes. It never waits, calls or catches a transport's errors itself, so the live
engine (`simulators.live_driver`: HTTP, asyncio) and the discrete-event one (`simulators.des.driver`:
SimPy, the services called directly) each interpret the same steps in their own terms.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, cast

from chargeshare.domain.geo import Point
from simulators.faults import FaultRecord
from simulators.fleet import DriverPlan
from simulators.power import Vehicle
from simulators.smart_gate import SmartGate

if TYPE_CHECKING:
    from simulators.grid_metrics import GridMeter

SEARCH_RADIUS_M = 8_000
CANDIDATES = 5
SEARCH_ROUNDS = 3
RETRY_AFTER_S = 600
RECEIPT_CHECKS = 20
RECEIPT_CHECK_EVERY_S = 30
CONNECTOR_NO = 1  # home chargers: the driver always books and plugs into the first

# How a driver's run ended (the summary's `driver_outcomes`).
TOO_LATE = "too_late"  # arrived after the run's window
NO_CHARGER = "no_charger"  # every search round booked nothing (why: `no_charger_because`)
PAYMENTS_DOWN = "payments_down"  # the last round's booking was refused: payments unavailable
ERROR = "error"  # the marketplace refused the booking or the cancellation otherwise
NO_SHOW = "no_show"
CANCELLED = "cancelled"
REFUSED_AT_CHARGER = "refused_at_charger"  # the charger would not start: the booking ended meanwhile
CHARGED = "charged"
UNPAID = "unpaid"  # unplugged, but no receipt came within the driver's patience
REQUEST_LOST = "request_lost"  # live only: a request died with its backend process, and the app gave up
DRIVER_OUTCOMES = (
    TOO_LATE,
    NO_CHARGER,
    PAYMENTS_DOWN,
    ERROR,
    NO_SHOW,
    CANCELLED,
    REFUSED_AT_CHARGER,
    CHARGED,
    UNPAID,
    REQUEST_LOST,
)

# Why a driver's last search round booked nothing (the summary's `no_charger_because`).
NONE_FREE_NEARBY = "none_free_nearby"  # no charger online and free for the slot within the search radius
ALL_TAKEN = "all_taken"  # every charger the search found was booked by someone else first (409)
RATE_LIMITED = "rate_limited"  # the API refused the booking as too frequent (429)
PRICED_OUT = "priced_out"  # every charger the search found was quoted above the driver's most
NO_CHARGER_REASONS = (NONE_FREE_NEARBY, ALL_TAKEN, RATE_LIMITED, PRICED_OUT)


def booking_minutes(want_wh: int) -> int:
    """How long to book: what the car needs at a modest 7 kW, with a margin, 15 min to 4 h."""
    return max(15, min(240, math.ceil(want_wh / 7_000 * 60 * 1.3) + 20))


@dataclass
class DriverStats:
    outcomes: Counter[str] = field(default_factory=Counter)
    no_charger_because: Counter[str] = field(default_factory=Counter)  # drivers ending "no_charger"
    conflicts: int = 0
    payments_down: int = 0  # booking attempts answered 503 (payment provider unavailable)
    rate_limited: int = 0  # booking attempts answered 429
    receipts_pence: int = 0
    errors: list[str] = field(default_factory=list)
    faults_fired: int = 0
    charger_reconnects: int = 0
    chargers_went_offline: int = 0  # during the run window (not the wind-down's disconnects)
    wind_down_from: datetime | None = None  # where the run window ended and the wind-down began

    sessions_closed_without_stop: int = 0  # the backend closed them: the charger's stop was lost

    def count_offline(self, in_window: bool) -> None:
        self.chargers_went_offline += in_window

    def count_closed_without_stop(self) -> None:
        self.sessions_closed_without_stop += 1

    frames_left_queued: int = 0  # transaction messages a charger never got to replay
    payments_backlog: int = 0  # payment steps not yet done when the run ended (before reconcile)
    outcomes_of_faults: Counter[str] = field(default_factory=Counter)
    fault_log: list[FaultRecord] = field(default_factory=list)  # each fault fired: when, on whom
    # Ids of the bookings the drivers' apps were answered with (live runs, over HTTP): a booking the
    # backend holds that no app heard of is one its driver will never use, and pay for as a no-show.
    bookings_answered: set[int] | None = None
    # Every transaction's smart charging gate, from every charger (the run's regulation measures).
    smart_gates: list[SmartGate] = field(default_factory=list)
    fleet_hub: Counter[str] = field(default_factory=Counter)  # a fleet hub's vans and hosts (DES)
    # Site and feeder loads against their limits (simulators/grid_metrics.py), when the run has any.
    grid: GridMeter | None = None
    # V2G guests' bookings: what the charger's import and export registers measured for each (DES).
    v2g_registers: dict[int, tuple[int, int]] | None = None


T = TypeVar("T")


class Effect(Generic[T]):
    """A step the script asks its engine to take; T is what the engine sends back."""


@dataclass(frozen=True)
class Candidate:
    """A charger the map search found."""

    charger_id: int
    charge_point_id: str


@dataclass(frozen=True)
class Booked:
    booking_id: int
    starts_at: datetime
    ends_at: datetime
    charge_point_id: str


@dataclass(frozen=True)
class Refused:
    """The marketplace refused the request otherwise than as below; `reason` goes in the errors."""

    reason: str


class BookRefusal:
    """A refusal the script reacts to by name (a singleton per kind)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"BookRefusal({self.name})"


TAKEN = BookRefusal("taken")  # someone else has the slot (the API's 409)
TOO_FREQUENT = BookRefusal("too_frequent")  # the driver books too often (429)
PAYMENTS_UNAVAILABLE = BookRefusal("payments_unavailable")  # the card hold cannot be placed (503)
TOO_DEAR = BookRefusal("too_dear")  # the price rose above the driver's limit since its quote (409)

BookAnswer = Booked | BookRefusal | Refused


@dataclass(frozen=True)
class Plugged:
    """The car is plugged in; `charging` whether a transaction started. `handle` is the engine's
    own (what `WaitDone` waits on)."""

    handle: object
    charging: bool


@dataclass(frozen=True)
class Sleep(Effect[None]):
    seconds: float  # simulated


@dataclass(frozen=True)
class Search(Effect[list[Candidate]]):
    """Chargers online and free for the whole window near `centre`, nearest first."""

    centre: Point
    radius_m: int
    available_from: datetime
    available_until: datetime
    limit: int


@dataclass(frozen=True)
class Quoted:
    per_kwh: int  # pence
    quote_id: int | None = None  # held for the driver: a booking naming it is made at its price


@dataclass(frozen=True)
class Quote(Effect[Quoted]):
    """The price per kWh a booking of the candidate for this window would be charged, held for the
    driver where the engine books exactly the window quoted (the DES)."""

    candidate: Candidate
    starts_at: datetime
    minutes: int


@dataclass(frozen=True)
class Book(Effect[BookAnswer]):
    candidate: Candidate
    minutes: int
    max_energy_wh: int
    starts_at: datetime
    override_smart_charging: bool
    max_price_per_kwh: int | None = None  # the most the driver accepts: its limit
    quote_id: int | None = None  # the quote held for the driver, which the booking is made at


@dataclass(frozen=True)
class Cancel(Effect[bool]):
    """Cancel as the driver; True if it was."""

    booking_id: int


@dataclass(frozen=True)
class PlugIn(Effect[Plugged | None]):
    """Plug in and present the card; None if the charger refused the plug (in use, reserved)."""

    charge_point_id: str
    id_tag: str
    vehicle: Vehicle
    target_wh: int


@dataclass(frozen=True)
class WaitDone(Effect[None]):
    """Until the car stops taking energy or the transaction ends, at most `timeout_s` (simulated)."""

    plugged: Plugged
    timeout_s: float


@dataclass(frozen=True)
class Unplug(Effect[None]):
    charge_point_id: str


@dataclass(frozen=True)
class FetchReceipt(Effect[int | None]):
    """The receipt's total in pence, None while there is none."""

    booking_id: int


Script = Generator[Effect[object], object, T]


def ask(effect: Effect[T]) -> Script[T]:
    """Yield one effect and return its outcome, typed."""
    return cast(T, (yield cast(Effect[object], effect)))


class Timeline(Protocol):
    """The engine's view of time: the clock's now, and what is left of the run's window."""

    def now(self) -> datetime: ...

    def seconds_left(self) -> float: ...


class NoCharger(Exception):
    """A search round that booked nothing, and why (one of NO_CHARGER_REASONS)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def drive(plan: DriverPlan, timeline: Timeline, stats: DriverStats, receipt_patience_s: float) -> Script[str]:
    """One driver's run, ending in its outcome. `receipt_patience_s`: how long (simulated) it keeps
    looking for a receipt after unplugging."""
    yield from ask(Sleep(plan.arrives_after_s))
    if timeline.seconds_left() <= 0:
        return TOO_LATE
    outcome, missed = NO_CHARGER, NONE_FREE_NEARBY
    for _ in range(SEARCH_ROUNDS):
        try:
            answer = yield from _book_nearby(plan, timeline, stats)
        except NoCharger as exc:
            outcome, missed = NO_CHARGER, exc.reason
        else:
            if isinstance(answer, Booked):
                return (yield from _use_booking(plan, timeline, stats, answer, receipt_patience_s))
            if answer is not PAYMENTS_UNAVAILABLE:
                return ERROR
            outcome = PAYMENTS_DOWN  # a clean refusal: worth trying again later, like a full map
        if timeline.seconds_left() <= RETRY_AFTER_S:
            break
        yield from ask(Sleep(RETRY_AFTER_S))  # try again a bit later
    if outcome == NO_CHARGER:
        stats.no_charger_because[missed] += 1
    return outcome


def _book_nearby(plan: DriverPlan, timeline: Timeline, stats: DriverStats) -> Script[BookAnswer]:
    """Search the map around home and book the nearest free charger among the first few.

    Returns the booking, or the refusal that ends the round otherwise than by a conflict; raises
    NoCharger when the round found nothing to book."""
    # A slot from when we will get there, for as long as the car needs.
    starts_at = timeline.now() + timedelta(seconds=plan.travel_s)
    minutes = booking_minutes(plan.want_wh)
    until = starts_at + timedelta(minutes=minutes)
    found = yield from ask(Search(plan.home, SEARCH_RADIUS_M, starts_at, until, CANDIDATES))
    priced_out = 0
    for c in found:
        # Asked only by drivers with a limit: a run without limits takes the steps it always did.
        limit = plan.max_price_per_kwh
        quote_id = None
        if limit is not None:
            quoted = yield from ask(Quote(c, starts_at, minutes))
            if quoted.per_kwh > limit:
                priced_out += 1
                continue
            quote_id = quoted.quote_id
        answer = yield from ask(Book(c, minutes, plan.want_wh, starts_at, plan.overrides, limit, quote_id))
        if answer is TOO_DEAR:
            priced_out += 1
            continue
        if answer is TAKEN:
            stats.conflicts += 1
            continue
        if answer is TOO_FREQUENT:  # booking too often: back off like a full map
            stats.rate_limited += 1
            raise NoCharger(RATE_LIMITED)
        if answer is PAYMENTS_UNAVAILABLE:
            stats.payments_down += 1
        elif isinstance(answer, Refused):
            stats.errors.append(f"{plan.name}: {answer.reason}")
        elif isinstance(answer, Booked) and stats.bookings_answered is not None:
            stats.bookings_answered.add(answer.booking_id)
        return answer
    if not found:
        raise NoCharger(NONE_FREE_NEARBY)
    raise NoCharger(PRICED_OUT if priced_out == len(found) else ALL_TAKEN)


def _use_booking(
    plan: DriverPlan, timeline: Timeline, stats: DriverStats, booking: Booked, receipt_patience_s: float
) -> Script[str]:
    def until(at: datetime) -> float:
        return (at - timeline.now()).total_seconds()

    if plan.intent == "no_show":
        # The slot passes without its driver. The run lasts until it has (or the window ends), so
        # the backend's no-show sweep, not the run's wind-down, expires the booking with its fee.
        yield from ask(Sleep(max(0.0, min(until(booking.ends_at), timeline.seconds_left()))))
        return NO_SHOW
    if plan.intent == "cancel":
        yield from ask(Sleep(plan.travel_s / 2))
        return CANCELLED if (yield from ask(Cancel(booking.booking_id))) else ERROR

    cp_id = booking.charge_point_id
    yield from ask(Sleep(max(0.0, min(until(booking.starts_at), timeline.seconds_left()))))
    vehicle = Vehicle(plan.battery_wh, plan.soc_wh, plan.max_power_w)
    plugged = yield from ask(PlugIn(cp_id, plan.id_tag, vehicle, plan.want_wh))
    if plugged is None:
        return REFUSED_AT_CHARGER  # in use or reserved for someone else: our booking ended meanwhile
    if not plugged.charging:
        yield from ask(Unplug(cp_id))
        yield from ask(Cancel(booking.booking_id))  # if it has ended already, that is no matter
        return REFUSED_AT_CHARGER
    wait_s = min(until(booking.ends_at), timeline.seconds_left())
    if wait_s > 0:
        yield from ask(WaitDone(plugged, wait_s))
    yield from ask(Unplug(cp_id))
    # The receipt follows the charger's StopTransaction, which a charger offline or rebooting sends
    # later: look again for a while (bounded) before calling it missing.
    for _ in range(max(RECEIPT_CHECKS, math.ceil(receipt_patience_s / RECEIPT_CHECK_EVERY_S))):
        cost = yield from ask(FetchReceipt(booking.booking_id))
        if cost is not None:
            stats.receipts_pence += cost
            return CHARGED
        yield from ask(Sleep(RECEIPT_CHECK_EVERY_S))
    stats.errors.append(f"{plan.name}: no receipt for booking {booking.booking_id}")
    return UNPAID
