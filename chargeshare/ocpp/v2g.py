"""V2G in OCPP 2.1 words (the decisions are chargeshare/services/v2g.py's).

A V2G session gets, in turn:

- NotifyAllowedEnergyTransfer naming the transaction with `AC_BPT` (bidirectional AC) besides the
  plain AC modes: the car may discharge in this transaction;
- a TxProfile (Absolute, from the session's start, in W) charging at the connector's rating outside
  the discharge windows, and in each window a `CentralSetpoint` period: charging limit 0, setpoint
  and discharge limit minus the rating (2.1 writes discharge as negative power).

The car stops discharging at its driver's floor on its own; the profile says only when it may.

To a charger taking A only (chargeshare/ocpp/rate_units.py) the profile goes in A on one phase
(`numberPhases` 1), each figure's size floored as site limits are (`grid_limits.amps_within`):
charging at most the rating, and discharging, setpoint and discharge limit alike, at minus the
floored A of the rating, so never more than the rating either way; under 6 A either is 0.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp import grid_limits as ocpp_grid

V2G_PROFILE_ID = 210_000
V2G_STACK_LEVEL = 2  # above the driver's override (0) and the grid's TxDefault (1)
ALLOWED_TRANSFER = ("AC_single_phase", "AC_three_phase", "AC_BPT")
DISCHARGE_MODE = "CentralSetpoint"


def discharge_periods(
    rating_w: int, windows: tuple[tuple[int, int], ...], unit: cmd.RateUnit = cmd.RateUnit.WATTS
) -> tuple[cmd.SchedulePeriod, ...]:
    """Charging at the rating, discharging at it within each (from s, to s) window, in `unit`."""
    charging = ocpp_grid.period(0, rating_w, unit)
    # A discharge is written negative: its size is floored like a charging limit, towards 0.
    out = -(ocpp_grid.amps_within(rating_w) if unit is cmd.RateUnit.AMPS else rating_w)
    periods: list[cmd.SchedulePeriod] = []
    at = 0
    for start, end in sorted(windows):
        start = max(start, at)
        if end <= start:
            continue
        if start > at:
            periods.append(replace(charging, start_s=at))
        periods.append(
            cmd.SchedulePeriod(
                start, 0, phases=charging.phases, mode=DISCHARGE_MODE, setpoint=out, discharge_limit=out
            )
        )
        at = end
    periods.append(replace(charging, start_s=at))
    return tuple(periods)


def export_commands(
    connector_no: int,
    session_id: int,
    rating_w: int,
    windows: tuple[tuple[int, int], ...],
    at: datetime,
    unit: cmd.RateUnit = cmd.RateUnit.WATTS,
) -> tuple[cmd.AllowEnergyTransfer, cmd.SetChargingProfile]:
    return cmd.AllowEnergyTransfer(session_id, ALLOWED_TRANSFER), export_profile(
        connector_no, session_id, rating_w, windows, at, unit
    )


def export_profile(
    connector_no: int,
    session_id: cmd.TransactionRef,
    rating_w: int,
    windows: tuple[tuple[int, int], ...],
    at: datetime,
    unit: cmd.RateUnit = cmd.RateUnit.WATTS,
) -> cmd.SetChargingProfile:
    """The discharging TxProfile alone, in `unit`."""
    profile = cmd.ChargingProfile(
        profile_id=V2G_PROFILE_ID,
        stack_level=V2G_STACK_LEVEL,
        purpose=cmd.ProfilePurpose.TX,
        kind=cmd.ProfileKind.ABSOLUTE,
        rate_unit=unit,
        periods=discharge_periods(rating_w, windows, unit),
        starts_at=at,
        transaction=session_id,
    )
    return cmd.SetChargingProfile(connector_no, profile)
