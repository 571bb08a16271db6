"""Charging profiles (OCPP smart charging), version-neutral and pure: which limit applies to a
connector at a moment, and the composite schedule over a window.

Rules kept from both versions: per purpose, the applicable profile with the highest stack level wins;
a transaction profile overrides the default one only while a transaction runs; the charger-wide
maximum caps whatever the transaction profiles allow, and is the whole charger's: the connectors
drawing power share it (`shared_limits_w`); a limit in amps is converted to watts at 230 V per
phase, on the phases the period names that the connector is wired to (a three-phase connector told
one phase switches to one, if its charger can: `ProfileBook.switches_3to1`; one that cannot draws
nothing, as no draw obeys; a one-phase connector told three still has one), each at most the
current its rating allows per phase (`drawn_w`). A multi-phase connector that cannot switch
draws nothing under a limit in W below 6 A on each of its phases either: a car takes no less.
The connector's own rating caps everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from chargeshare.domain.grid_limits import MIN_AMPS, VOLTS, fair_shares, phases_within

MAX_STACK_LEVEL = 8
RECURRENCE_S = {"Daily": 86_400, "Weekly": 7 * 86_400}


class Purpose(StrEnum):
    CHARGER_MAX = "charger_max"  # 1.6 ChargePointMaxProfile, 2.0.1 ChargingStationMaxProfile
    TX_DEFAULT = "tx_default"
    TX = "tx"


class Kind(StrEnum):
    ABSOLUTE = "Absolute"
    RELATIVE = "Relative"
    RECURRING = "Recurring"


@dataclass(frozen=True)
class Period:
    start_s: int
    limit: float
    phases: int | None = None


@dataclass(frozen=True)
class Profile:
    profile_id: int
    connector_no: int  # 0: the whole charger
    stack_level: int
    purpose: Purpose
    kind: Kind
    unit: str  # "W" or "A"
    periods: tuple[Period, ...]
    set_at: datetime  # an Absolute profile without a start starts when it was set
    start: datetime | None = None
    duration_s: int | None = None
    recurrency: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction: str | None = None  # a TxProfile for one transaction only


@dataclass(frozen=True)
class TxContext:
    """What the profiles need to know about a connector's running transaction."""

    transaction: str
    started_at: datetime


class ProfileRefused(Exception):
    """A SetChargingProfile the charger must answer Rejected."""


def to_watts(limit: float, unit: str, phases: int) -> int:
    return int(limit) if unit == "W" else int(limit * VOLTS * phases)


def drawn_w(
    limit: float, unit: str, named: int | None, wired: int, rating_w: int, switches: bool = True
) -> int:
    """What a connector wired to `wired` phases, rated `rating_w`, draws under a limit: in A, on
    the phases named (`named`, none: all it has) that it has, each phase at most its rated current.
    Told fewer phases than it has, it switches to them if it `switches`, else draws nothing; in W
    one that cannot switch draws nothing under 6 A on each of its phases. It draws on the phases it
    declares only if its rating carries 6 A on each of them, else on one (`phases_within`), as the
    backend takes it."""
    wired = phases_within(wired, rating_w)
    on = min(named or wired, wired)
    if not switches and on < wired:
        return 0
    rated = rating_w * on // wired  # its rated current on each of the `on` phases, in whole W
    if unit == "W":
        if not switches and wired > 1 and limit < MIN_AMPS * VOLTS * wired:
            return 0
        return int(limit) if on == wired else min(int(limit), rated)
    return min(int(limit * VOLTS * on), rated)


def from_watts(watts: int, unit: str, phases: int) -> int:
    """Whole watts or whole amps (whole numbers satisfy 1.6's multipleOf 0.1 exactly)."""
    return watts if unit == "W" else watts // (VOLTS * phases)


@dataclass
class ProfileBook:
    """The profiles a charger holds."""

    profiles: list[Profile] = field(default_factory=list)
    # Whether it switches a three-phase connector to one phase when a period names one (1.6
    # ConnectorSwitch3to1PhaseSupported, 2.0.1 SmartChargingCtrlr.Phases3to1).
    switches_3to1: bool = True

    def install(self, p: Profile, tx: TxContext | None) -> None:
        if p.stack_level > MAX_STACK_LEVEL or p.stack_level < 0:
            raise ProfileRefused(f"stack level {p.stack_level} is beyond {MAX_STACK_LEVEL}")
        if p.purpose is Purpose.CHARGER_MAX and p.connector_no != 0:
            raise ProfileRefused("a charger-wide maximum belongs on connector 0")
        if p.purpose is Purpose.TX and (p.connector_no == 0 or tx is None):
            raise ProfileRefused("a transaction profile needs a running transaction on its connector")
        if not p.periods or p.periods[0].start_s != 0:
            raise ProfileRefused("a schedule's first period must start at 0")
        if p.kind is Kind.RECURRING and p.recurrency not in RECURRENCE_S:
            raise ProfileRefused("a recurring profile needs Daily or Weekly")
        # A profile with the same id, or the same purpose and stack level on the connector, is replaced.
        self.profiles = [
            q
            for q in self.profiles
            if q.profile_id != p.profile_id
            and not (
                q.connector_no == p.connector_no and q.purpose is p.purpose and q.stack_level == p.stack_level
            )
        ]
        self.profiles.append(p)

    def clear(
        self,
        *,
        profile_id: int | None = None,
        connector_no: int | None = None,
        purpose: Purpose | None = None,
        stack_level: int | None = None,
    ) -> bool:
        """Remove matching profiles; False (OCPP: Unknown) when nothing matched."""

        def matches(q: Profile) -> bool:
            if profile_id is not None:
                return q.profile_id == profile_id
            return (
                (connector_no is None or q.connector_no == connector_no)
                and (purpose is None or q.purpose is purpose)
                and (stack_level is None or q.stack_level == stack_level)
            )

        kept = [q for q in self.profiles if not matches(q)]
        cleared = len(kept) != len(self.profiles)
        self.profiles = kept
        return cleared

    def end_transaction(self, transaction: str) -> None:
        """A transaction profile lives only as long as its transaction."""
        self.profiles = [
            q
            for q in self.profiles
            if q.purpose is not Purpose.TX or (q.transaction is not None and q.transaction != transaction)
        ]

    # ---- evaluation ----------------------------------------------------------------------------
    def limit_w(
        self, connector_no: int, at: datetime, tx: TxContext | None, rating_w: int, phases: int
    ) -> int:
        """The power the connector may draw at `at`, in watts."""
        limit = rating_w
        for purpose in (
            Purpose.CHARGER_MAX,
            Purpose.TX if self._has_tx_profile(connector_no, at, tx) else Purpose.TX_DEFAULT,
        ):
            p = self._winner(purpose, connector_no, at, tx)
            if p is not None:
                period = _period_at(p, at, tx)
                if period is not None:
                    drawn = drawn_w(period.limit, p.unit, period.phases, phases, rating_w, self.switches_3to1)
                    limit = min(limit, drawn)
        return limit

    def charger_max_w(self, at: datetime, phases: int) -> int | None:
        """The charger-wide maximum in force at `at`, if any profile sets one."""
        p = self._winner(Purpose.CHARGER_MAX, 0, at, None)
        period = None if p is None else _period_at(p, at, None)
        if p is None or period is None:
            return None
        # Told fewer phases than a connector has, one that cannot switch pauses that connector
        # (`limit_w`); the others share this.
        return to_watts(period.limit, p.unit, min(period.phases or phases, phases))

    def shared_limits_w(
        self,
        at: datetime,
        connectors: dict[int, tuple[TxContext | None, int, int]],
        drawing: set[int],
    ) -> dict[int, int]:
        """Each connector's limit at `at` (`connectors`: its transaction, rating and phases), the
        charger-wide maximum shared max-min fairly among the connectors `drawing` power: a
        ChargePointMaxProfile / ChargingStationMaxProfile limits the charger's total, not each
        connector's."""
        own = {
            no: self.limit_w(no, at, tx, rating, phases) for no, (tx, rating, phases) in connectors.items()
        }
        cap = self.charger_max_w(at, max((ph for _, _, ph in connectors.values()), default=1))
        if cap is None:
            return own
        shares = fair_shares({0: cap}, {no: (own[no], [0]) for no in sorted(drawing) if no in own})
        return {**own, **shares}

    def composite(
        self,
        connector_no: int,
        now: datetime,
        duration_s: int,
        tx: TxContext | None,
        rating_w: int,
        phases: int,
    ) -> list[tuple[int, int]]:
        """(start offset in seconds, limit in W) wherever the limit changes within the window."""
        moments = {now}
        end = now + timedelta(seconds=duration_s)
        for p in self.profiles:
            if p.connector_no not in (0, connector_no):
                continue
            for edge in _edges(p, now, end, tx):
                if now < edge < end:
                    moments.add(edge)
        out: list[tuple[int, int]] = []
        for moment in sorted(moments):
            w = self.limit_w(connector_no, moment, tx, rating_w, phases)
            if not out or out[-1][1] != w:
                out.append((int((moment - now).total_seconds()), w))
        return out

    def _has_tx_profile(self, connector_no: int, at: datetime, tx: TxContext | None) -> bool:
        return tx is not None and self._winner(Purpose.TX, connector_no, at, tx) is not None

    def _winner(
        self, purpose: Purpose, connector_no: int, at: datetime, tx: TxContext | None
    ) -> Profile | None:
        candidates = [
            q
            for q in self.profiles
            if q.purpose is purpose
            and q.connector_no in (0, connector_no)
            and (q.valid_from is None or q.valid_from <= at)
            and (q.valid_to is None or at < q.valid_to)
            and (purpose is not Purpose.TX or (tx is not None and q.transaction in (None, tx.transaction)))
            and _period_at(q, at, tx) is not None
        ]
        # The connector's own profile beats a charger-wide one at the same stack level.
        return max(candidates, key=lambda q: (q.stack_level, q.connector_no != 0), default=None)


def _schedule_start(p: Profile, at: datetime, tx: TxContext | None) -> datetime | None:
    if p.kind is Kind.RELATIVE:
        return tx.started_at if tx is not None else None
    base = p.start or p.set_at
    if p.kind is Kind.RECURRING and p.recurrency in RECURRENCE_S:
        every = RECURRENCE_S[p.recurrency]
        cycles = (at - base).total_seconds() // every
        return base + timedelta(seconds=max(0.0, cycles) * every)
    return base


def _period_at(p: Profile, at: datetime, tx: TxContext | None) -> Period | None:
    start = _schedule_start(p, at, tx)
    if start is None or at < start:
        return None
    elapsed = (at - start).total_seconds()
    if p.duration_s is not None and elapsed >= p.duration_s:
        return None
    current = None
    for period in p.periods:
        if period.start_s <= elapsed:
            current = period
    return current


def _edges(p: Profile, now: datetime, end: datetime, tx: TxContext | None) -> list[datetime]:
    starts: list[datetime] = []
    if p.kind is Kind.RECURRING and p.recurrency in RECURRENCE_S:
        every = timedelta(seconds=RECURRENCE_S[p.recurrency])
        first = _schedule_start(p, now, tx)
        while first is not None and first < end and len(starts) < 64:
            starts.append(first)
            first += every
    else:
        s = _schedule_start(p, now, tx)
        if s is not None:
            starts.append(s)
    edges = [x for x in (p.valid_from, p.valid_to) if x is not None]
    for s in starts:
        edges.append(s)
        edges.extend(s + timedelta(seconds=q.start_s) for q in p.periods)
        if p.duration_s is not None:
            edges.append(s + timedelta(seconds=p.duration_s))
    return edges
