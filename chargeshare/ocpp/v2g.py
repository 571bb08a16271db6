"""V2G in OCPP 2.1 words (the decisions are chargeshare/services/v2g.py's).

A V2G session gets, in turn:

- NotifyAllowedEnergyTransfer naming the transaction with `AC_BPT` (bidirectional AC) besides the
  plain AC modes: the car may discharge in this transaction;
- a TxProfile (Absolute, from the session's start, in W) charging at the connector's rating outside
  the discharge windows, and in each window a `CentralSetpoint` period: charging limit 0, setpoint
  and discharge limit minus the rating (2.1 writes discharge as negative power).

The car stops discharging at its driver's floor on its own; the profile says only when it may.
"""

from __future__ import annotations

from datetime import datetime

from chargeshare.ocpp import commands as cmd

V2G_PROFILE_ID = 210_000
V2G_STACK_LEVEL = 2  # above the driver's override (0) and the grid's TxDefault (1)
ALLOWED_TRANSFER = ("AC_single_phase", "AC_three_phase", "AC_BPT")
DISCHARGE_MODE = "CentralSetpoint"


def discharge_periods(rating_w: int, windows: tuple[tuple[int, int], ...]) -> tuple[cmd.SchedulePeriod, ...]:
    """Charging at the rating, discharging at it within each (from s, to s) window."""
    periods: list[cmd.SchedulePeriod] = []
    at = 0
    for start, end in sorted(windows):
        start = max(start, at)
        if end <= start:
            continue
        if start > at:
            periods.append(cmd.SchedulePeriod(at, rating_w))
        periods.append(
            cmd.SchedulePeriod(start, 0, mode=DISCHARGE_MODE, setpoint=-rating_w, discharge_limit=-rating_w)
        )
        at = end
    periods.append(cmd.SchedulePeriod(at, rating_w))
    return tuple(periods)


def export_commands(
    connector_no: int, session_id: int, rating_w: int, windows: tuple[tuple[int, int], ...], at: datetime
) -> tuple[cmd.AllowEnergyTransfer, cmd.SetChargingProfile]:
    profile = cmd.ChargingProfile(
        profile_id=V2G_PROFILE_ID,
        stack_level=V2G_STACK_LEVEL,
        purpose=cmd.ProfilePurpose.TX,
        kind=cmd.ProfileKind.ABSOLUTE,
        rate_unit=cmd.RateUnit.WATTS,
        periods=discharge_periods(rating_w, windows),
        starts_at=at,
        transaction=session_id,
    )
    return cmd.AllowEnergyTransfer(session_id, ALLOWED_TRANSFER), cmd.SetChargingProfile(
        connector_no, profile
    )
