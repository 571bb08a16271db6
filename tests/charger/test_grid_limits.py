"""The virtual charger obeys a site's or feeder's limits as the backend says them
(chargeshare/ocpp/grid_limits.py), in each OCPP version: each connector's share is its
TxDefaultProfile, the charger-wide maximum caps the connectors' total, and the composite schedule
shows the limit."""

from __future__ import annotations

from typing import Any

import pytest

from chargeshare.ocpp import V16, phases, rate_units
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.grid_limits import limit_commands
from simulators.firmware import ConnectorState
from simulators.power import Vehicle
from tests.charger.conftest import Rig

pytestmark = pytest.mark.e2e


async def send(rig: Rig, command: cmd.Command[Any]) -> dict[str, Any]:
    outcome = await rig.csms.command(
        command.action(rig.version), command.payload(rig.version, lambda _tx: None)
    )
    assert outcome.ok and outcome.payload is not None, outcome
    return outcome.payload


async def both_charging(rig: Rig) -> None:
    for no in (1, 2):
        plugged = await rig.charger.plug_in(no, f"TAG-{no}", Vehicle(60_000, 20_000, 22_000), 30_000)
        assert plugged.transaction_id is not None


async def test_each_connector_draws_its_share_and_the_composite_schedule_says_so(rig: Rig) -> None:
    await both_charging(rig)
    for command in limit_commands(((1, 3_000), (2, 4_500)), rig.clock.now()):
        assert (await send(rig, command))["status"] == "Accepted"
    c1, c2 = rig.charger.connectors[1], rig.charger.connectors[2]
    assert (rig.charger.power_w(c1), rig.charger.power_w(c2)) == (3_000, 4_500)
    composite = await send(rig, cmd.GetCompositeSchedule(2, 600, cmd.RateUnit.WATTS))
    schedule = composite["chargingSchedule" if rig.version == V16 else "schedule"]
    assert schedule["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 4_500}]
    for command in limit_commands((), rig.clock.now()):
        assert (await send(rig, command))["status"] == "Accepted"
    assert (rig.charger.power_w(c1), rig.charger.power_w(c2)) == (7_400, 22_000)


async def test_a_charger_wide_maximum_caps_the_connectors_total_not_each_connector(rig: Rig) -> None:
    await both_charging(rig)
    (charger_max, *_) = limit_commands(((1, 5_000), (2, 5_000)), rig.clock.now())
    assert (await send(rig, charger_max))["status"] == "Accepted"
    drawn = [rig.charger.power_w(c) for c in rig.charger.connectors.values()]
    assert drawn == [5_000, 5_000]  # 10 kW shared equally, not 7.4 kW and 10 kW


async def test_a_connector_held_at_0_w_is_suspended_by_the_charger_and_charges_again(rig: Rig) -> None:
    await both_charging(rig)
    c1 = rig.charger.connectors[1]
    for command in limit_commands(((1, 0), (2, 5_000)), rig.clock.now()):
        assert (await send(rig, command))["status"] == "Accepted"
    assert (c1.state, rig.charger.power_w(c1)) == (ConnectorState.SUSPENDED_EVSE, 0)
    for command in limit_commands(((1, 3_000), (2, 5_000)), rig.clock.now()):
        assert (await send(rig, command))["status"] == "Accepted"
    assert (c1.state, rig.charger.power_w(c1)) == (ConnectorState.CHARGING, 3_000)


async def test_a_charger_taking_amps_only_refuses_watts_and_obeys_amps_on_the_phases_named(rig: Rig) -> None:
    rig.charger.take_amps_only()
    declared = await send(rig, cmd.GetSettings((rate_units.key(rig.version),)))
    said = cmd.GetSettings((rate_units.key(rig.version),)).details(rig.version, declared)
    assert rate_units.from_read(rig.version, said) == {cmd.RateUnit.AMPS}
    await both_charging(rig)
    c1, c2 = rig.charger.connectors[1], rig.charger.connectors[2]  # 7.4 kW on 1 phase, 22 kW on 3
    for command in limit_commands(((1, 3_000), (2, 4_500)), rig.clock.now()):
        assert (await send(rig, command))["status"] == "Rejected"
    assert (rig.charger.power_w(c1), rig.charger.power_w(c2)) == (7_400, 22_000)
    for command in limit_commands(((1, 3_000), (2, 4_500)), rig.clock.now(), unit=cmd.RateUnit.AMPS):
        assert (await send(rig, command))["status"] == "Accepted"
    # 13 A and 19 A, each on the one phase the profile names: under the 3,000 W and 4,500 W decided.
    assert (rig.charger.power_w(c1), rig.charger.power_w(c2)) == (13 * 230, 19 * 230)
    composite = await send(rig, cmd.GetCompositeSchedule(1, 600))  # no unit asked: its own, A
    schedule = composite["chargingSchedule" if rig.version == V16 else "schedule"]
    assert schedule["chargingRateUnit"] == "A"
    assert schedule["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 13}]


async def declared_phases(rig: Rig) -> dict[int, int]:
    read = cmd.GetSettings((phases.key(rig.version),))
    return phases.from_read(rig.version, read.details(rig.version, await send(rig, read)))


async def test_a_charger_says_its_phases_and_draws_a_limit_in_amps_on_all_it_is_wired_to(rig: Rig) -> None:
    rig.charger.take_amps_only()
    wired = await declared_phases(rig)
    # 1.6 per connector (1.NotApplicable, 2.RST); 2.0.1 the station's most, three.
    assert wired == ({1: 1, 2: 3} if rig.version == V16 else {0: 3})
    await both_charging(rig)
    c2 = rig.charger.connectors[2]  # 22 kW on 3 phases
    limits = ((1, 3_000), (2, 11_000))
    for command in limit_commands(limits, rig.clock.now(), unit=cmd.RateUnit.AMPS, phases=wired):
        assert (await send(rig, command))["status"] == "Accepted"
    # 15 A on each of its three phases: 10,350 W of the 11,000 W decided.
    assert rig.charger.power_w(c2) == 15 * 230 * 3
    # Held to one phase (what a charger not known to be three-phase is sent), 47 A is more than a
    # phase of it carries: it draws its 31.9 A on the one, 7,333 W of the 11,000 W.
    for command in limit_commands(limits, rig.clock.now(), unit=cmd.RateUnit.AMPS):
        assert (await send(rig, command))["status"] == "Accepted"
    assert rig.charger.power_w(c2) == 22_000 // 3


async def test_a_201_charger_says_each_evses_own_phases(rig: Rig) -> None:
    rig.charger.wire_phases({1: 1, 2: 3})
    read = phases.GetPhases((1, 2))
    said = read.details(rig.version, await send(rig, read))
    # 1.6 per connector in its one key; 2.0.1 the station's most, and each EVSE's own.
    assert said == ({1: 1, 2: 3} if rig.version == V16 else {0: 3, 1: 1, 2: 3})
    assert [phases.of_connector(said, no) for no in (1, 2)] == [1, 3]
    rig.charger.wire_phases(3, said=False)  # it no longer says, for the EVSEs either
    assert read.details(rig.version, await send(rig, read)) == {}


async def test_a_charger_wired_to_one_phase_says_so_and_draws_on_the_one(rig: Rig) -> None:
    rig.charger.take_amps_only()
    rig.charger.wire_phases(1)
    assert await declared_phases(rig) == ({1: 1, 2: 1} if rig.version == V16 else {0: 1})
    await both_charging(rig)
    c2 = rig.charger.connectors[2]
    # Told three phases by a backend that guessed, a one-phase connector still has one: 10 A x 230 V
    # at most, and the charger's 14 A maximum (10,000 W on three) on its one phase caps the two.
    limits = ((1, 3_000), (2, 7_000))
    for command in limit_commands(limits, rig.clock.now(), unit=cmd.RateUnit.AMPS, phases={2: 3}):
        assert (await send(rig, command))["status"] == "Accepted"
    c1 = rig.charger.connectors[1]
    assert rig.charger.power_w(c2) <= 10 * 230
    assert rig.charger.power_w(c1) + rig.charger.power_w(c2) == 14 * 230 < 3_000 + 7_000


@pytest.mark.parametrize("switches", [True, False])
async def test_a_charger_says_whether_it_switches_to_one_phase_and_obeys_only_what_it_can(
    rig: Rig, switches: bool
) -> None:
    """3,000 W for a three-phase connector is under 6 A on each phase: a charger that switches is
    sent it on one phase and draws 13 A there; one that cannot is sent 0 A on its three and pauses,
    and told one phase anyway (by a backend that ignored what it said) it pauses too."""
    rig.charger.take_amps_only()
    rig.charger.switch_phases(switches)
    read = phases.GetPhases((1, 2))
    wired = read.details(rig.version, await send(rig, read))
    assert phases.switches(wired) is switches
    await both_charging(rig)
    c2 = rig.charger.connectors[2]  # 22 kW on 3 phases
    limits = ((1, 3_000), (2, 3_000))
    for command in limit_commands(limits, rig.clock.now(), unit=cmd.RateUnit.AMPS, phases=wired):
        assert (await send(rig, command))["status"] == "Accepted"
    assert rig.charger.power_w(c2) == (13 * 230 if switches else 0)
    if not switches:
        told_one = phases.Wiring(wired, switches_3to1=True)
        for command in limit_commands(limits, rig.clock.now(), unit=cmd.RateUnit.AMPS, phases=told_one):
            assert (await send(rig, command))["status"] == "Accepted"
        assert (c2.state, rig.charger.power_w(c2)) == (ConnectorState.SUSPENDED_EVSE, 0)
