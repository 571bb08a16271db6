"""Grid limits in OCPP words: the charger-wide maximum is the sum of the connectors' shares, each
share a TxDefaultProfile, all with stable ids so a new decision replaces the last."""

from __future__ import annotations

from chargeshare.ocpp import V16
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.grid_limits import (
    CHARGER_MAX_PROFILE_ID,
    GRID_STACK_LEVEL,
    limit_commands,
    tx_default_profile_id,
)
from tests.conftest import T0


def test_a_charger_gets_its_total_on_connector_0_and_each_share_on_its_connector() -> None:
    commands = limit_commands(((2, 1_380), (1, 4_000)), T0)
    said = [(c.connector_no, c.profile.purpose, c.profile.profile_id, c.profile.periods) for c in commands]  # type: ignore[union-attr]
    assert said == [
        (0, cmd.ProfilePurpose.CHARGER_MAX, CHARGER_MAX_PROFILE_ID, (cmd.SchedulePeriod(0, 5_380),)),
        (1, cmd.ProfilePurpose.TX_DEFAULT, tx_default_profile_id(1), (cmd.SchedulePeriod(0, 4_000),)),
        (2, cmd.ProfilePurpose.TX_DEFAULT, tx_default_profile_id(2), (cmd.SchedulePeriod(0, 1_380),)),
    ]
    assert limit_commands(((1, 4_000), (2, 1_380)), T0) == commands  # the same ids every time
    assert {c.profile.stack_level for c in commands} == {GRID_STACK_LEVEL}  # type: ignore[union-attr]
    body = commands[0].payload(V16, lambda _tx: None)
    assert body["csChargingProfiles"]["chargingSchedule"]["chargingRateUnit"] == "W"


def test_no_limits_clear_both_purposes_at_the_grid_stack_level() -> None:
    assert limit_commands((), T0) == (
        cmd.ClearChargingProfile(purpose=cmd.ProfilePurpose.CHARGER_MAX, stack_level=GRID_STACK_LEVEL),
        cmd.ClearChargingProfile(purpose=cmd.ProfilePurpose.TX_DEFAULT, stack_level=GRID_STACK_LEVEL),
    )
