"""The grid in a replay: what each connector drew, from its charger's own frames, and the limits the
recorded backend sent, from its own.

A replay has no virtual chargers to read power from, so a connector's load is the energy its charger
metered over each interval between two readings of a transaction, over that interval's length (an
average: what a charger obeying its limits drew stays under them), less the one Wh a whole-Wh
register may overstate it by. Since an average spreads a change within an interval over all of it,
the tolerance is two meter intervals, not a live run's one. A connector with a car held at
0 W is one its charger said was SuspendedEVSE. These loads, measured against the sites, feeders and
flexibility events the trace records, are what `grid_within_limits` is judged on.

The limits the recorded backend sent (the TxDefaultProfile of each connector, every period, from
when) are compared with the ones the replay's backend decides from the same setup: a limit sent
there that was not in force here within a minute of it means the recorded setup is not the one the
recorded backend ran with.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from chargeshare.ocpp import V16, csms_v16, csms_v201
from chargeshare.ocpp.connection import CallRejected
from chargeshare.ocpp.grid_limits import TX_DEFAULT_PROFILE_ID, amps_within
from chargeshare.services.events import GridLimitsDue
from chargeshare.services.invariants import InvariantResult
from simulators.grid_metrics import GridMeter
from simulators.trace import Record, Trace

DEFAULT_METER_INTERVAL_S = 60
MAX_CONNECTORS = 99  # TxDefaultProfile ids the grid uses: 190000 + the connector's number
SUSPENDED = "SuspendedEVSE"

Connector = tuple[str, int]  # (charge point id, connector or EVSE number)
AnswerOf = Callable[[Record], Record | None]


@dataclass
class _Transaction:
    connector: Connector
    readings: list[tuple[datetime, int]] = field(default_factory=list)
    ended: datetime | None = None


@dataclass(frozen=True)
class _Segment:
    start: datetime
    end: datetime
    watts: int


class LoadCurves:
    """Each connector's power over time, as its charger's energy readings tell it."""

    def __init__(self) -> None:
        self.segments: dict[Connector, list[_Segment]] = defaultdict(list)
        self._starts: dict[Connector, list[datetime]] = {}
        self.held: dict[Connector, list[tuple[datetime, bool]]] = defaultdict(list)
        self.meter_interval_s = DEFAULT_METER_INTERVAL_S

    @classmethod
    def scan(cls, trace: Trace, answer_of: AnswerOf) -> LoadCurves:
        curves = cls()
        transactions: dict[tuple[str, Any], _Transaction] = {}
        pending: dict[str, list[_Transaction]] = defaultdict(list)  # 1.6 starts with no recorded answer
        for r in trace.records:
            if r.kind != "ocpp" or r.data["dir"] != "in":
                continue
            frame = decode_frame(r.data["frame"])
            if frame is None or len(frame) != 4 or frame[0] != 2 or not isinstance(frame[3], dict):
                continue
            action, payload, cp = frame[2], frame[3], r.data["cp"]
            try:
                if r.data["version"] == V16:
                    curves._see_v16(r, action, payload, cp, transactions, pending, answer_of)
                else:
                    curves._see_v201(r, action, payload, cp, transactions)
            except (CallRejected, AttributeError, KeyError, TypeError, ValueError):
                continue  # a malformed frame: the backend's CALLERROR covers it
        curves._build(transactions.values())
        return curves

    def _see_v16(
        self,
        r: Record,
        action: Any,
        payload: dict[str, Any],
        cp: str,
        transactions: dict[tuple[str, Any], _Transaction],
        pending: dict[str, list[_Transaction]],
        answer_of: AnswerOf,
    ) -> None:
        if action == "StartTransaction":
            tx = _Transaction((cp, int(payload.get("connectorId", 1))))
            tx.readings.append((_at(payload.get("timestamp"), r), int(payload["meterStart"])))
            answer = answer_of(r)
            reply = None if answer is None else decode_frame(answer.data["frame"])
            answered = reply is not None and reply[0] == 3 and isinstance(reply[2], dict)
            tx_id = reply[2].get("transactionId") if answered and reply is not None else None
            if tx_id:
                transactions[(cp, tx_id)] = tx
            elif answer is None:
                pending[cp].append(tx)
            return
        if action == "StatusNotification":
            self.held[(cp, int(payload.get("connectorId", 0)))].append(
                (_at(payload.get("timestamp"), r), payload.get("status") == SUSPENDED)
            )
            return
        if action not in ("MeterValues", "StopTransaction"):
            return
        key = (cp, payload.get("transactionId"))
        if key[1] is None:
            return
        if key not in transactions and pending[cp]:
            transactions[key] = pending[cp].pop(0)  # the first unknown id after a start is its own
        found = transactions.get(key)
        if found is None:
            return
        tx = found
        if action == "MeterValues":
            for mv in payload.get("meterValue", []):
                wh = csms_v16.energy_register_wh([mv])
                if wh is not None:
                    tx.readings.append((_at(mv.get("timestamp"), r), wh))
        else:
            at = _at(payload.get("timestamp"), r)
            tx.readings.append((at, int(payload["meterStop"])))
            tx.ended = at

    def _see_v201(
        self,
        r: Record,
        action: Any,
        payload: dict[str, Any],
        cp: str,
        transactions: dict[tuple[str, Any], _Transaction],
    ) -> None:
        if action != "TransactionEvent":
            return
        info = payload["transactionInfo"]
        key = (cp, info["transactionId"])
        at = _at(payload.get("timestamp"), r)
        tx = transactions.get(key)
        if tx is None:
            evse = payload.get("evse") or {}
            tx = transactions[key] = _Transaction((cp, int(evse.get("id", 1))))
        if "chargingState" in info:
            self.held[tx.connector].append((at, info["chargingState"] == SUSPENDED))
        for mv in payload.get("meterValue", []):
            for wh in csms_v201.energy_readings_wh([mv]):
                tx.readings.append((_at(mv.get("timestamp"), r), wh))
        if payload.get("eventType") == "Ended":
            tx.ended = at
            self.held[tx.connector].append((at, False))

    def _build(self, transactions: Iterable[_Transaction]) -> None:
        gaps: list[float] = []
        for tx in transactions:
            readings = sorted(set(tx.readings))
            for (a, wa), (b, wb) in itertools.pairwise(readings):
                seconds = (b - a).total_seconds()
                if seconds <= 0:
                    continue
                gaps.append(seconds)
                # A register reads whole Wh (rounded down): an interval is credited with the least
                # its two readings allow, one Wh under their difference. Going back is its own check.
                watts = max(0, (wb - wa - 1) * 3_600_000 // round(seconds * 1000))
                self.segments[tx.connector].append(_Segment(a, b, watts))
        for segments in self.segments.values():
            segments.sort(key=lambda s: s.start)
        self._starts = {c: [s.start for s in segments] for c, segments in self.segments.items()}
        for changes in self.held.values():
            changes.sort(key=lambda x: x[0])
        if gaps:
            # The chargers' meter interval as they kept it: most of their readings are this close
            # (a loaded live run's drift past their marks, and its offline bursts, included).
            gaps.sort()
            self.meter_interval_s = max(1, math.ceil(gaps[(len(gaps) - 1) * 9 // 10]))

    @property
    def tolerance_s(self) -> int:
        """How long a site or feeder may read above its limit: two meter intervals. An interval's
        average spreads a change within it over the whole interval, so a rise the limits allowed
        later reads as up to one interval early, on top of the interval a live run allows."""
        return 2 * self.meter_interval_s

    def power_w(self, connector: Connector, at: datetime) -> int:
        """What the connector drew at `at` (0 outside its transactions)."""
        starts = self._starts.get(connector)
        if not starts:
            return 0
        i = bisect.bisect_right(starts, at) - 1
        if i < 0:
            return 0
        segment = self.segments[connector][i]
        return segment.watts if at < segment.end else 0

    def held_at(self, connector: Connector, at: datetime) -> bool:
        """Whether its charger last said, by `at`, that a car there was held at 0 W."""
        changes = self.held.get(connector)
        if not changes:
            return False
        i = bisect.bisect_right([t for t, _ in changes], at) - 1
        return i >= 0 and changes[i][1]


class ReplayGridMeter(GridMeter):
    """The grid meter on loads read from the frames, judged with a replay's tolerance."""

    def invariant(self) -> InvariantResult:
        return replace(
            super().invariant(),
            description="no site or feeder above its limit, as its chargers' readings show, for "
            "longer than two meter intervals",
        )


# How far apart a limit sent there and the same limit decided here may be: a housekeeping sweep's
# phase (30 s) differs between a run and its replay, and a command takes its round trip.
MATCH_WITHIN = timedelta(seconds=60)

Timeline = list[tuple[datetime, int]]  # (from when, W), in order
# (from when, the limit, its phases if in A, else 0 for W), in order: a charger taking A only is
# sent A on the phases named (chargeshare/ocpp/grid_limits.py).
Sent = list[tuple[datetime, int, int]]


def recorded_limits(trace: Trace) -> dict[Connector, Sent]:
    """Every limit the recorded backend sent each connector, from when (each period of its
    TxDefaultProfile, from the schedule's start, else when it was sent)."""
    sent: dict[Connector, Sent] = defaultdict(list)
    for r in trace.records:
        if r.kind != "ocpp" or r.data["dir"] != "out":
            continue
        frame = decode_frame(r.data["frame"])
        if frame is None or len(frame) != 4 or frame[0] != 2 or frame[2] != "SetChargingProfile":
            continue
        grid_share = tx_default_periods(frame[3])
        if grid_share is None:
            continue
        no, start, periods = grid_share
        base = _at(start, r)
        for offset, limit, phases in periods:
            sent[(r.data["cp"], no)].append((base + timedelta(seconds=offset), limit, phases))
    return {c: sorted(xs) for c, xs in sent.items()}


def tx_default_periods(payload: Any) -> tuple[int, Any, list[tuple[int, int, int]]] | None:
    """A SetChargingProfile's grid share, if it is one: its connector, its schedule's start as sent,
    and each period's (offset s, limit, phases if in A else 0)."""
    if not isinstance(payload, dict):
        return None
    profile = payload.get("csChargingProfiles") or payload.get("chargingProfile") or {}
    profile_id = profile.get("chargingProfileId", profile.get("id"))
    if not isinstance(profile_id, int) or not 0 < profile_id - TX_DEFAULT_PROFILE_ID <= MAX_CONNECTORS:
        return None
    no = payload.get("connectorId", payload.get("evseId"))
    schedules = profile.get("chargingSchedule")
    schedule = schedules[0] if isinstance(schedules, list) and schedules else schedules
    if not isinstance(no, int) or not isinstance(schedule, dict):
        return None
    in_amps = schedule.get("chargingRateUnit") == "A"
    periods = []
    for period in schedule.get("chargingSchedulePeriod", []):
        limit = period.get("limit") if isinstance(period, dict) else None
        offset = period.get("startPeriod", 0) if isinstance(period, dict) else 0
        phases = (period.get("numberPhases") or 3) if in_amps and isinstance(period, dict) else 0
        if isinstance(limit, int | float) and isinstance(offset, int) and isinstance(phases, int):
            periods.append((offset, round(limit), phases))
    return no, schedule.get("startSchedule"), periods


def as_sent(watts: int, phases: int) -> int:
    """A limit decided in W as it is sent: in W, or (`phases`) as the A on that many phases."""
    return watts if not phases else amps_within(watts, phases)


class DecidedLimits:
    """Every limit the replay's backend decided for each connector, from when (steps included)."""

    def __init__(self) -> None:
        self.decided: dict[Connector, Timeline] = defaultdict(list)

    def __call__(self, event: GridLimitsDue) -> None:
        for no, watts in event.limits_w:
            self.decided[(event.charge_point_id, no)].append((event.at, watts))
        for no, then, watts in event.steps:
            self.decided[(event.charge_point_id, no)].append((then, watts))

    def held(self, connector: Connector, start: datetime, end: datetime, phases: int = 0) -> set[int]:
        """The limits decided here for the connector in force at some moment of [start, end]: in W,
        or (`phases`) as the A sent on that many phases for them."""
        timeline = sorted(self.decided.get(connector, []))
        before = [w for t, w in timeline if t <= start]
        watts = {*before[-1:], *(w for t, w in timeline if start < t <= end)}
        return watts if not phases else {as_sent(w, phases) for w in watts}

    def unlike(self, recorded: dict[Connector, Sent]) -> list[str]:
        """The recorded limits this replay did not decide near when they were sent, per connector."""
        out = []
        for (cp, no), sent in sorted(recorded.items()):
            missing = [
                (t, limit, phases)
                for t, limit, phases in sent
                if limit not in self.held((cp, no), t - MATCH_WITHIN, t + MATCH_WITHIN, phases)
            ]
            if missing:
                t, limit, phases = missing[0]
                unit = "A" if phases else "W"
                here = sorted(self.held((cp, no), t - MATCH_WITHIN, t + MATCH_WITHIN, phases))
                decided = ", ".join(f"{x} {unit}" for x in here) or "none"
                more = f" ({len(missing) - 1} more such limits)" if len(missing) > 1 else ""
                out.append(
                    f"{cp} connector {no}: the recorded backend limited it to {limit} {unit} from "
                    f"{t.isoformat()}, where this replay decided {decided}{more}; "
                    "the recorded grid setup is not the one it ran with"
                )
        return out


def decode_frame(text: str) -> list[Any] | None:
    """A recorded OCPP-J frame as its JSON array, or None when it is not one."""
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    return frame if isinstance(frame, list) else None


def _at(value: Any, r: Record) -> datetime:
    """A frame's own timestamp (when its charger metered), else when it was recorded."""
    if isinstance(value, str):
        try:
            t = datetime.fromisoformat(value)
        except ValueError:
            return r.t
        if t.tzinfo is not None:
            return t
    return r.t
