"""The smart charging regulations in OCPP words: the settings a relevant charge point takes from the
central system, and how a driver's override reaches it. Neither OCPP 1.6 nor 2.0.1 names any of
this, so the names are ours, documented as a vendor documents its keys (docs/architecture/smart-charging.md):

- 1.6 configuration keys (ChangeConfiguration), the same names as 2.0.1 variables of the component
  `UKSmartChargingCtrlr` (SetVariables): `RandomisedDelayMaxSeconds` (0..1800, default 600),
  `RandomisedDelayOverride` (the owner's override), `DefaultChargingHoursEnabled` (the owner's
  default charging hours, on unless removed) and `DemandSideResponseActive` (providing DSR now).
- The end-user's override is a TxProfile for the running transaction: the profile OCPP gives a
  transaction of its own, which lives and dies with it and overrides the TxDefaultProfile. Its
  `chargingProfileId` says it is the override; its one period is the connector's rating, so it lifts
  nothing the ChargePointMaxProfile / ChargingStationMaxProfile caps (where site limits belong).
  To a charger taking A only it goes in A, as site limits do (chargeshare/ocpp/grid_limits.py).
  OCPP 2.1 has words of its own for both (`randomizedDelay` in a charging schedule, and the
  PriorityCharging purpose); 1.6 and 2.0.1 have none.
"""

from __future__ import annotations

from chargeshare.domain.grid_limits import phases_within
from chargeshare.domain.smart_charge_points import SmartSettings
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp import grid_limits as ocpp_grid

COMPONENT = "UKSmartChargingCtrlr"
RANDOMISED_DELAY_MAX = "RandomisedDelayMaxSeconds"
RANDOMISED_DELAY_OVERRIDE = "RandomisedDelayOverride"
DEFAULT_CHARGING_HOURS = "DefaultChargingHoursEnabled"
DEMAND_SIDE_RESPONSE = "DemandSideResponseActive"
# A TxProfile with this id is the end-user's override of the delay and the default charging hours.
END_USER_OVERRIDE_PROFILE_ID = 20211467  # after SI 2021/1467
OVERRIDE_STACK_LEVEL = 0  # the lowest: a grid limit set as a TxProfile above it still wins


def _flag(value: bool) -> str:
    return "true" if value else "false"


def settings_commands(s: SmartSettings) -> tuple[cmd.ChangeSetting, ...]:
    """The commands that put `s` on a charger, one setting each (both versions change one at a time)."""
    return tuple(
        cmd.ChangeSetting(cmd.SettingKey(name, COMPONENT), value)
        for name, value in (
            (RANDOMISED_DELAY_MAX, str(s.randomised_delay_max_s)),
            (RANDOMISED_DELAY_OVERRIDE, _flag(s.randomised_delay_override)),
            (DEFAULT_CHARGING_HOURS, _flag(s.default_charging_hours)),
            (DEMAND_SIDE_RESPONSE, _flag(s.demand_side_response)),
        )
    )


def override_command(
    connector_no: int,
    transaction: cmd.TransactionRef,
    rating_w: int,
    unit: cmd.RateUnit = cmd.RateUnit.WATTS,
    wired: int = ocpp_grid.AMPS_PHASES,
) -> cmd.SetChargingProfile:
    """The driver's override for a running transaction, as the TxProfile it rides on, in `unit`
    (in A on the `wired` phases of its connector)."""
    return cmd.SetChargingProfile(connector_no, override_profile(rating_w, transaction, unit, wired))


def override_profile(
    rating_w: int,
    transaction: cmd.TransactionRef | None = None,
    unit: cmd.RateUnit = cmd.RateUnit.WATTS,
    wired: int = ocpp_grid.AMPS_PHASES,
) -> cmd.ChargingProfile:
    """The override TxProfile: also what a remote start carries as its charging profile. In A it is
    the rating floored on the connector's phases (`grid_limits.period`; one when unknown, or when
    the rating does not carry 6 A on each of them: `phases_within`), never more than the rating's W."""
    wired = phases_within(wired, rating_w)
    return cmd.ChargingProfile(
        profile_id=END_USER_OVERRIDE_PROFILE_ID,
        stack_level=OVERRIDE_STACK_LEVEL,
        purpose=cmd.ProfilePurpose.TX,
        kind=cmd.ProfileKind.RELATIVE,
        rate_unit=unit,
        periods=(ocpp_grid.period(0, rating_w, unit, wired),),
        transaction=transaction,
    )
