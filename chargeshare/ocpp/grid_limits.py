"""Site and feeder limits in OCPP words (the decisions are chargeshare/services/grid.py's).

A charger whose connectors have limits gets, in 1.6 and 2.0.1 alike:

- a ChargePointMaxProfile (2.0.1: ChargingStationMaxProfile) on connector (EVSE) 0 whose one period
  is the sum of its connectors' limits: what the charger as a whole may draw, which caps every
  transaction's profile, the driver's override TxProfile included;
- a TxDefaultProfile on each connector with that connector's limit: how the charger splits it.

Both are Absolute, start when decided, have no end, and have stable ids (so each new decision
replaces the last) at stack level 1. They are in W, or in A for a charger that takes A only
(chargeshare/ocpp/rate_units.py): per phase on the phases its connector is wired to
(chargeshare/ocpp/phases.py; one when unknown), floored, so the charger never draws more than the W
decided. A limit under 6 A on each phase of a multi-phase connector goes on one phase
(`numberPhases` 1, in W as in A) only for a charger that says it switches three phases to one;
any other stays on its phases, and is sent 0 (paused) in A and in W alike, as it could obey no
other way (`obeyable_w`; the allocation gives such a connector 6 A on each phase or nothing:
chargeshare/services/grid.py, but a decision taken before the wiring was known, or a raise held at
an earlier limit, can be below it). A connector is taken as wired to the phases it declares only
where its rating carries 6 A on each of them, else to one (`GridLimitsDue.phases_at_most`). A limit
already known to change later (a flexibility event beginning or ending) is a second period
starting then, so the charger changes on time however late the next decision reaches it. A
charger taken off its site has both cleared.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from types import MappingProxyType

from chargeshare.domain.grid_limits import MIN_AMPS, VOLTS, min_charging_w, phases_on
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp import phases as ocpp_phases

GRID_STACK_LEVEL = 1  # above 0, where a charger's own defaults and the driver's override sit
CHARGER_MAX_PROFILE_ID = 190_000  # the charger's whole limit (issue 19's number, spelt out)
TX_DEFAULT_PROFILE_ID = 190_000  # plus the connector's number: each connector's share
# A limit in A always says its phases (numberPhases): a charger told none assumes 3. One phase is
# what a charger of unknown wiring is held to (A x 230 V whatever it could use; 6 A is 1,380 W).
AMPS_PHASES = 1


def amps_within(w: int, phases: int = AMPS_PHASES) -> int:
    """The most whole amps per phase that draw at most `w` on `phases` phases: floored, never
    rounded up. Under 6 A it is 0: a car cannot charge on less, so a charger told less would
    pause or take 6 A, over the limit; 0 pauses it on purpose."""
    amps = w // (VOLTS * phases)
    return amps if amps >= MIN_AMPS else 0


def phases_for(w: int, wired: int, switches: bool = False) -> int:
    """The phases a limit of `w` goes on, for a connector wired to `wired`: all of them while `w`
    gives each the 6 A minimum; under it, for a charger that `switches` three phases to one, one
    phase, where `w` may still be 6 A or more, rather than 0 on all. One that cannot switch stays
    on all: told one phase, it could only pause or draw on all, over the limit."""
    if switches and wired > AMPS_PHASES and amps_within(w, wired) == 0:
        return AMPS_PHASES
    return max(AMPS_PHASES, wired)


def obeyable_w(w: int, wired: int, switches: bool = False) -> int:
    """`w` if a connector wired to `wired` can charge on it, else 0: a car takes no less than 6 A
    on each phase it draws on (one, for a charger that `switches` three phases to one; all, for
    one that cannot), drawing that or nothing, so a limit between 0 and it is sent as 0, paused
    on purpose (as in A), never above the decision."""
    return w if w >= min_charging_w(wired, switches, MIN_AMPS * VOLTS) else 0


def tx_default_profile_id(connector_no: int) -> int:
    return TX_DEFAULT_PROFILE_ID + connector_no


def period(
    offset: int, w: int, unit: cmd.RateUnit, wired: int = AMPS_PHASES, switches: bool = False
) -> cmd.SchedulePeriod:
    """A period limited to `w` in `unit`: in A, `amps_within(w, n)` on the n phases it names
    (`phases_for` a connector wired to `wired`); in W, the phases named only where a charger that
    `switches` is to switch to one."""
    n = phases_for(w, wired, switches)
    if unit is cmd.RateUnit.AMPS:
        return cmd.SchedulePeriod(offset, amps_within(w, n), phases=n)
    return cmd.SchedulePeriod(offset, w, phases=n if w > 0 and n < wired else None)


def _profile(
    profile_id: int,
    purpose: cmd.ProfilePurpose,
    periods: Sequence[tuple[int, int]],
    at: datetime,
    unit: cmd.RateUnit,
    wired: int,
    switches: bool,
) -> cmd.ChargingProfile:
    return cmd.ChargingProfile(
        profile_id=profile_id,
        stack_level=GRID_STACK_LEVEL,
        purpose=purpose,
        kind=cmd.ProfileKind.ABSOLUTE,
        rate_unit=unit,
        periods=tuple(period(offset, w, unit, wired, switches) for offset, w in periods),
        starts_at=at,
    )


def _offset_s(at: datetime, then: datetime, *, rises: bool) -> int:
    """Whole seconds from the profile's start as the charger reads it (`at` to the millisecond):
    rounded down for a lowered limit, in force by the moment it is due; up for a raised one, not
    in force before it (a flexibility event's limit holds to its end)."""
    sent = at.replace(microsecond=at.microsecond // 1000 * 1000)
    seconds = (then - sent) / timedelta(seconds=1)
    return max(0, math.ceil(seconds) if rises else math.floor(seconds))


def connector_periods(
    limits_w: tuple[tuple[int, int], ...], steps: Sequence[tuple[int, datetime, int]], at: datetime
) -> dict[int, list[tuple[int, int]]]:
    """Each connector's (offset s from `at`, W) periods: its limit now, then each later step."""
    periods = {no: [(0, w)] for no, w in limits_w}
    for no, then, w in sorted(steps, key=lambda s: (s[0], s[1])):
        if no not in periods:
            continue
        # Never before the previous period: two edges within a second share its start.
        offset = max(periods[no][-1][0], _offset_s(at, then, rises=w > periods[no][-1][1]))
        if offset == periods[no][-1][0]:
            periods[no][-1] = (offset, w)
        else:
            periods[no].append((offset, w))
    return periods


def _summed(
    periods: dict[int, list[tuple[int, int]]], wired: Mapping[int, int]
) -> list[tuple[int, int, int]]:
    """The charger-wide maximum over time: at every connector's edge, the sum of the limits then,
    and the most phases a connector given more than 0 then is wired to (none: one). Not all the
    charger has: on a charger that cannot switch, a sum under 6 A on each of those would be 0 A,
    pausing a one-phase connector beside a paused three-phase one."""
    edges = sorted({offset for ps in periods.values() for offset, _ in ps})

    def at(ps: list[tuple[int, int]], edge: int) -> int:
        return next(w for offset, w in reversed(ps) if offset <= edge)

    return [
        (
            edge,
            sum(at(ps, edge) for ps in periods.values()),
            max((wired[no] for no, ps in periods.items() if at(ps, edge) > 0), default=AMPS_PHASES),
        )
        for edge in edges
    ]


def limit_commands(
    limits_w: tuple[tuple[int, int], ...],
    at: datetime,
    steps: Sequence[tuple[int, datetime, int]] = (),
    unit: cmd.RateUnit = cmd.RateUnit.WATTS,
    phases: Mapping[int, int] = MappingProxyType({}),
    at_most: Mapping[int, int] = MappingProxyType({}),
) -> tuple[cmd.SetChargingProfile | cmd.ClearChargingProfile, ...]:
    """What puts (connector number, W) limits decided at `at` on a charger, with any later
    (connector number, when, W) `steps`: the charger-wide maximum first, then each connector's
    share, in `unit`; no limits: clear both. In A, each connector's on the `phases` it is wired to
    (chargeshare/ocpp/phases.py: connector number, 0 for the whole charger; unknown is one), the
    maximum in each period on the most of those of the connectors given more than 0 then: a cap on
    each phase, so the charger's total over those phases is within the sum, and no connector given
    something is told to use fewer phases than it is wired to unless the charger switches three
    phases to one (`phases_for`). A connector is taken as wired to the phases it declares if
    `at_most` says its rating carries 6 A on each of them (connector number: phases), else to one
    (`phases_on`), and a limit it could not obey is sent as 0 (`obeyable_w`), in W as in A, before
    the charger's sum is taken."""
    if not limits_w:
        return (
            cmd.ClearChargingProfile(purpose=cmd.ProfilePurpose.CHARGER_MAX, stack_level=GRID_STACK_LEVEL),
            cmd.ClearChargingProfile(purpose=cmd.ProfilePurpose.TX_DEFAULT, stack_level=GRID_STACK_LEVEL),
        )
    wired = {
        no: phases_on(ocpp_phases.of_connector(phases, no), at_most.get(no, ocpp_phases.MAX_PHASES))
        for no, _ in limits_w
    }
    switches = ocpp_phases.switches(phases)
    periods = {
        no: [(offset, obeyable_w(w, wired[no], switches)) for offset, w in ps]
        for no, ps in connector_periods(limits_w, steps, at).items()
    }
    charger_max = cmd.ChargingProfile(
        profile_id=CHARGER_MAX_PROFILE_ID,
        stack_level=GRID_STACK_LEVEL,
        purpose=cmd.ProfilePurpose.CHARGER_MAX,
        kind=cmd.ProfileKind.ABSOLUTE,
        rate_unit=unit,
        periods=tuple(period(offset, w, unit, most, switches) for offset, w, most in _summed(periods, wired)),
        starts_at=at,
    )
    return (
        cmd.SetChargingProfile(0, charger_max),
        *(
            cmd.SetChargingProfile(
                no,
                _profile(
                    tx_default_profile_id(no),
                    cmd.ProfilePurpose.TX_DEFAULT,
                    periods[no],
                    at,
                    unit,
                    wired[no],
                    switches,
                ),
            )
            for no in sorted(periods)
        ),
    )
