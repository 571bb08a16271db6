"""Site and feeder limits in OCPP words (the decisions are chargeshare/services/grid.py's).

A charger whose connectors have limits gets, in 1.6 and 2.0.1 alike:

- a ChargePointMaxProfile (2.0.1: ChargingStationMaxProfile) on connector (EVSE) 0 whose one period
  is the sum of its connectors' limits: what the charger as a whole may draw, which caps every
  transaction's profile, the driver's override TxProfile included;
- a TxDefaultProfile on each connector with that connector's limit: how the charger splits it.

Both are Absolute, start when decided, have no end, are in W, and have stable ids (so each new
decision replaces the last) at stack level 1. A charger taken off its site has both cleared.
"""

from __future__ import annotations

from datetime import datetime

from chargeshare.ocpp import commands as cmd

GRID_STACK_LEVEL = 1  # above 0, where a charger's own defaults and the driver's override sit
CHARGER_MAX_PROFILE_ID = 190_000  # the charger's whole limit (issue 19's number, spelt out)
TX_DEFAULT_PROFILE_ID = 190_000  # plus the connector's number: each connector's share


def tx_default_profile_id(connector_no: int) -> int:
    return TX_DEFAULT_PROFILE_ID + connector_no


def _profile(profile_id: int, purpose: cmd.ProfilePurpose, limit_w: int, at: datetime) -> cmd.ChargingProfile:
    return cmd.ChargingProfile(
        profile_id=profile_id,
        stack_level=GRID_STACK_LEVEL,
        purpose=purpose,
        kind=cmd.ProfileKind.ABSOLUTE,
        rate_unit=cmd.RateUnit.WATTS,
        periods=(cmd.SchedulePeriod(0, limit_w),),
        starts_at=at,
    )


def limit_commands(
    limits_w: tuple[tuple[int, int], ...], at: datetime
) -> tuple[cmd.SetChargingProfile | cmd.ClearChargingProfile, ...]:
    """What puts (connector number, W) limits decided at `at` on a charger: the charger-wide maximum
    first, then each connector's share; no limits: clear both."""
    if not limits_w:
        return (
            cmd.ClearChargingProfile(purpose=cmd.ProfilePurpose.CHARGER_MAX, stack_level=GRID_STACK_LEVEL),
            cmd.ClearChargingProfile(purpose=cmd.ProfilePurpose.TX_DEFAULT, stack_level=GRID_STACK_LEVEL),
        )
    total = sum(w for _, w in limits_w)
    return (
        cmd.SetChargingProfile(
            0, _profile(CHARGER_MAX_PROFILE_ID, cmd.ProfilePurpose.CHARGER_MAX, total, at)
        ),
        *(
            cmd.SetChargingProfile(
                no, _profile(tx_default_profile_id(no), cmd.ProfilePurpose.TX_DEFAULT, w, at)
            )
            for no, w in sorted(limits_w)
        ),
    )
