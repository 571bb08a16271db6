"""A charge point's duties under the Smart Charge Points Regulations, for one transaction on one
connector: the randomised delay at each relevant time and the default charging hours. Sans-I/O and
clock-free: the charger walks it through time and draws power within the limit it says is in force.

The limit the connector may draw is the charger's own (rating and charging profiles) unless default
charging hours block it. Whenever that wanted limit changes while a transaction runs (it starts,
rises or falls: a relevant time), the change takes effect after a delay drawn from the charger's
seeded RNG, uniformly to the second in [0, max], unless the delay is suppressed (the driver's or the
owner's override, or DSR). Meanwhile the limit in force stays as it was: 0 W before a start, which
the connector shows as SuspendedEVSE.

The decision (`decide_delay`, `blocks`) and the physics the run measures (`segments`, the energy
put into each) are kept apart, so a deliberately broken charger overrides the first and is still
measured by the second.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from chargeshare.domain.smart_charge_points import (
    SmartSettings,
    Suppressed,
    blocked_edges_after,
    charging_blocked,
    delay_suppressed,
    draw_delay,
    in_peak,
)

LimitAt = Callable[[datetime], int]
"""The charger's own limit for the connector at a moment (rating and profiles), in W."""
EdgesBetween = Callable[[datetime, datetime], list[datetime]]
"""Where that limit may change within (start, end): a charging profile's period edges."""


class Change(StrEnum):
    START = "start"  # electricity would start flowing
    INCREASE = "increase"
    DECREASE = "decrease"


@dataclass
class RelevantTime:
    """One relevant time and what the delay did there (regulation 11)."""

    transaction: str  # the charger's own transaction id
    at: datetime
    change: Change
    drawn_s: int | None = None  # the delay drawn; None when suppressed
    suppressed: Suppressed | None = None  # why no delay operated
    cut_short_by: Suppressed | None = None  # a delay ended early by an override or DSR
    served_s: float | None = None  # how long the change was held back, once known

    @property
    def held_s(self) -> float:
        """How long the change was held back (so far, for a delay still running)."""
        return self.served_s if self.served_s is not None else float(self.drawn_s or 0)


@dataclass
class _Pending:
    target_w: int
    due: datetime
    record: RelevantTime


@dataclass(frozen=True)
class Segment:
    start: datetime
    end: datetime
    limit_w: int  # the limit in force throughout


@dataclass
class SmartGate:
    transaction: str
    settings: Callable[[], SmartSettings]
    rng: random.Random
    at: datetime  # walked up to here
    wire_id: int | str | None = None  # the transaction as the central system knows it
    charge_point_id: str = ""
    log: list[RelevantTime] = field(default_factory=list)
    end_user_override: bool = False
    applied_w: int = 0  # nothing flows before the transaction
    peak_wh: int = 0  # energy drawn within peak hours (the run's measure, not the charger's decision)
    _pending: _Pending | None = None

    # ---- the firmware's decisions (a broken charger overrides these) ------------------------------
    def decide_delay(self, settings: SmartSettings) -> tuple[int | None, Suppressed | None]:
        """The delay for a change now: (seconds, None), or (None, why it is suppressed)."""
        why = delay_suppressed(settings, end_user_override=self.end_user_override)
        if why is not None:
            return None, why
        return draw_delay(self.rng, settings.randomised_delay_max_s), None

    def blocks(self, at: datetime, settings: SmartSettings) -> bool:
        """Whether default charging hours keep the connector from drawing power at `at`."""
        if not settings.default_charging_hours or self.end_user_override:
            return False
        return charging_blocked(at, self._stop_spread_s(settings))

    # ---- walking through time ---------------------------------------------------------------------
    @property
    def delaying(self) -> bool:
        return self._pending is not None

    def begin(self, limit_at: LimitAt) -> None:
        """The transaction starts at `self.at`: a relevant time if power would flow."""
        self._settle(self.at, limit_at(self.at))

    def walk(self, until: datetime, limit_at: LimitAt, edges: EdgesBetween) -> list[Segment]:
        """Advance to `until`; the stretches on the way, each under one limit. Every relevant time
        on the way is met at its own instant (default charging hours' edges, the profiles' edges, a
        delay ending)."""
        out: list[Segment] = []
        t = self.at
        while t < until:
            nxt = min([until, *self._edges_between(t, until, edges)])
            out.append(Segment(t, nxt, self.applied_w))
            t = nxt
            self._settle(t, limit_at(t))
        self.at = max(self.at, until)
        return out

    def next_change(self, after: datetime, horizon: datetime, edges: EdgesBetween) -> datetime:
        """The first moment after `after` (at most `horizon`) at which the limit in force may change."""
        return min([horizon, *self._edges_between(after, horizon, edges)])

    def reconsider(self, limit_at: LimitAt) -> None:
        """Something changed now (a profile, a setting, the driver's override): a delay that may no
        longer operate ends, and a change of the wanted limit is a relevant time."""
        settings = self.settings()
        pending = self._pending
        if pending is not None:
            why = delay_suppressed(settings, end_user_override=self.end_user_override)
            if why is not None:
                # The held change goes ahead now; its relevant time keeps its record.
                pending.record.cut_short_by = why
                pending.record.served_s = (self.at - pending.record.at).total_seconds()
                self._pending = None
                self.applied_w = self._wanted(self.at, limit_at(self.at), settings)
                return
        self._settle(self.at, limit_at(self.at))

    def override(self, limit_at: LimitAt) -> None:
        """The driver overrode the delay and the default charging hours for this transaction."""
        self.end_user_override = True
        self.reconsider(limit_at)

    def close(self) -> None:
        """The transaction ends at `self.at`: a delay still running held its change until now."""
        if self._pending is not None:
            self._pending.record.served_s = (self.at - self._pending.record.at).total_seconds()
            self._pending = None
        self.applied_w = 0

    def account(self, segment: Segment, wh: int) -> None:
        """`wh` went into the car during `segment` (which never straddles a peak edge)."""
        if wh > 0 and in_peak(segment.start):
            self.peak_wh += wh

    # ---- inside -----------------------------------------------------------------------------------
    def _stop_spread_s(self, settings: SmartSettings) -> int:
        operates = delay_suppressed(settings, end_user_override=False) is None
        return settings.randomised_delay_max_s if operates else 0

    def _wanted(self, at: datetime, limit_w: int, settings: SmartSettings) -> int:
        return 0 if self.blocks(at, settings) else limit_w

    def _edges_between(self, start: datetime, end: datetime, edges: EdgesBetween) -> list[datetime]:
        found = [e for e in blocked_edges_after(start, self._stop_spread_s(self.settings())) if e < end]
        found += [e for e in edges(start, end) if start < e < end]
        if self._pending is not None and start < self._pending.due:
            found.append(self._pending.due)
        return found

    def _settle(self, at: datetime, limit_w: int) -> None:
        pending = self._pending
        if pending is not None and at >= pending.due:
            self.applied_w = pending.target_w
            pending.record.served_s = float(pending.record.drawn_s or 0)
            self._pending = pending = None
        settings = self.settings()
        wanted = self._wanted(at, limit_w, settings)
        goal = self.applied_w if pending is None else pending.target_w
        if wanted == goal:
            return
        if pending is not None:
            # The change under way is replaced: the delay already drawn is an equivalent delay for
            # this relevant time (regulation 11(2)(b)); a change undone before it took effect ends it.
            if wanted == self.applied_w:
                pending.record.served_s = (at - pending.record.at).total_seconds()
                self._pending = None
            else:
                pending.target_w = wanted
            return
        change = (
            Change.START
            if self.applied_w == 0
            else Change.INCREASE
            if wanted > self.applied_w
            else Change.DECREASE
        )
        record = RelevantTime(self.transaction, at, change)
        self.log.append(record)
        drawn, why = self.decide_delay(settings)
        record.drawn_s, record.suppressed = drawn, why
        if not drawn:
            record.served_s = 0.0
            self.applied_w = wanted
            return
        self._pending = _Pending(wanted, at + timedelta(seconds=drawn), record)
