"""The grid limit scenarios: `feeder-limit` and `dno-flex-event`, each green as shipped and red on a
build with one duty taken away (mutation tests): a backend that never decides the shares, one deaf to
flexibility events, and a charger that ignores the profiles it is sent. In the DES as shipped, and
live: the backend behind real WebSockets sends the limits to the live virtual chargers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from chargeshare.cli.app import app
from chargeshare.domain.grid_limits import allocate
from chargeshare.ocpp import grid_limits
from chargeshare.services import grid as grid_service_module
from chargeshare.services.grid import GridService
from simulators.charger import VirtualCharger
from simulators.des.charger import DesCharger
from simulators.scenario import Scenario, load
from simulators.scenario_runner import ScenarioResult, run_scenario
from tests.cli_runner import CliRunner

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def scenario(name: str) -> Scenario:
    return load(ROOT / "scenarios" / f"{name}.yaml")


def test_the_grid_scenarios_ship_with_their_feeders_and_flexibility_event() -> None:
    feeder_limit, flex = scenario("feeder-limit"), scenario("dno-flex-event")
    assert feeder_limit.engine == flex.engine == "des"
    assert feeder_limit.params.speed == flex.params.speed == 600  # live: about 16 real seconds
    grid = flex.params.fleet.grid
    assert feeder_limit.params.fleet.grid is not None and grid is not None
    assert (grid.feeders, grid.feeder_limit_w, grid.house_load_w) == (2, 20_000, 1_000)
    (event,) = grid.flex_events
    assert (event.feeder, event.at_s, event.duration_s, event.limit_w) == (1, 2_400, 1_800, 9_000)


def live(name: str, *, minutes: int | None = None) -> Scenario:
    """The scenario under the live engine at its file's speed; a mutant's run may be shorter, since
    the cars all arrive in its first minutes."""
    s = scenario(name)
    duration_s = s.params.duration_s if minutes is None else minutes * 60
    return dataclasses.replace(s, engine="live", params=dataclasses.replace(s.params, duration_s=duration_s))


def red_on_the_grid(result: ScenarioResult) -> bool:
    return not result.ok and any(f.startswith("invariant grid_within_limits: ") for f in result.failures)


@pytest.mark.slow  # a few seconds of DES
async def test_feeder_limit_holds_every_feeder_and_site_to_its_limit() -> None:
    result = await run_scenario(scenario("feeder-limit"))
    assert result.ok, result.failures
    measured = result.report.summary["grid"]
    assert measured["feeder_peak_w"] <= 20_000 and measured["over_limit_samples"] == 0
    assert set(result.report.grid_feeders) == {"F1", "F2"}


@pytest.mark.slow  # a few seconds of DES
async def test_a_backend_that_never_shares_a_feeder_turns_feeder_limit_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(GridService, "rebalance", lambda self: [])
    assert red_on_the_grid(await run_scenario(scenario("feeder-limit")))


@pytest.mark.slow  # a few seconds of DES
async def test_a_charger_ignoring_its_profiles_turns_feeder_limit_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(DesCharger, "_shared_limit_w", lambda self, c, at: c.max_power_w)
    assert red_on_the_grid(await run_scenario(scenario("feeder-limit")))


def amps_only(s: Scenario) -> Scenario:
    """The scenario with every charger taking charging schedules in A only (`fleet.amps_only_chargers`)."""
    fleet = dataclasses.replace(s.params.fleet, amps_only_chargers=12)
    return dataclasses.replace(s, params=dataclasses.replace(s.params, fleet=fleet))


@pytest.mark.slow  # a few seconds of DES; live plays an hour
@pytest.mark.parametrize("engine", ["des", "live"])
async def test_feeder_limit_holds_with_chargers_taking_amps_only(engine: str) -> None:
    played = amps_only(scenario("feeder-limit") if engine == "des" else live("feeder-limit", minutes=60))
    result = await run_scenario(played)
    assert result.ok, result.failures
    assert result.report.summary["grid"]["overloads"] == 0


@pytest.mark.slow  # a few seconds of DES
async def test_a_backend_sending_watts_to_chargers_taking_amps_only_turns_feeder_limit_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """They refuse every profile in W, so nothing holds their cars under the feeder's limit."""
    monkeypatch.setattr("chargeshare.ocpp.command_policy.rate_units.amps_only", lambda _units: False)
    assert red_on_the_grid(await run_scenario(amps_only(scenario("feeder-limit"))))


def phases_unsaid(s: Scenario) -> Scenario:
    """The scenario with the chargers not saying their phases (`fleet.phases_said: false`)."""
    fleet = dataclasses.replace(s.params.fleet, phases_said=False)
    return dataclasses.replace(s, params=dataclasses.replace(s.params, fleet=fleet))


@pytest.mark.slow  # a few seconds of DES, twice
async def test_three_phase_chargers_taking_amps_charge_on_three_phases_within_the_feeders() -> None:
    """Sent their limits on the three phases they say, the cars take about half as much again as
    held to one phase, where each draws what one phase of an 11 kW charger carries (16 A)."""
    three = await run_scenario(scenario("feeder-limit-three-phase"))
    assert three.ok, three.failures
    assert three.report.summary["grid"]["overloads"] == 0
    one = await run_scenario(phases_unsaid(scenario("feeder-limit-three-phase")))
    assert one.report.summary["grid"]["overloads"] == 0  # safe, only slower
    assert [f for f in one.failures if "energy_wh" in f] and not red_on_the_grid(one)
    assert three.report.summary["energy_wh"] >= 1.4 * one.report.summary["energy_wh"]


def crowded_and_fixed(s: Scenario) -> Scenario:
    """Four three-phase cars on each feeder cut to 12 kW (2,000 W each beside the houses, under 6 A
    on each phase), on chargers that cannot switch to one phase (`fleet.phase_switching: false`)."""
    assert s.params.fleet.grid is not None
    grid = dataclasses.replace(s.params.fleet.grid, feeder_limit_w=12_000)
    fleet = dataclasses.replace(s.params.fleet, phase_switching=False, grid=grid)
    return dataclasses.replace(s, params=dataclasses.replace(s.params, fleet=fleet))


@pytest.mark.slow  # a few seconds of DES, twice
async def test_chargers_that_cannot_switch_to_one_phase_charge_in_turn_within_the_feeders(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given 6 A on each phase or nothing, the cars charge in turn and every one is served, within
    the feeders. An allocation that gives them one phase's 1,380 W minimum (their charger cannot
    switch, so it is sent 0 A on its three phases) leaves every car waiting."""
    crowded = crowded_and_fixed(scenario("feeder-limit-three-phase"))
    turns = await run_scenario(crowded)
    assert turns.report.summary["grid"]["overloads"] == 0 and not red_on_the_grid(turns)
    assert turns.report.summary["driver_outcomes"]["charged"] == 8
    assert all(i.ok for i in turns.report.invariants), turns.failures
    # Its energy_wh expectation (72 kWh, for 25 kW feeders) is the only thing red.
    assert [f for f in turns.failures if not f.startswith("expectation: energy_wh")] == []

    def one_phase_minimum(phases: int, switches: bool, per_phase_w: int, rating_w: int | None = None) -> int:
        return per_phase_w

    monkeypatch.setattr(grid_service_module, "min_charging_w", one_phase_minimum)
    one_phase = await run_scenario(crowded)
    assert one_phase.report.summary["energy_wh"] < turns.report.summary["energy_wh"] / 4


@pytest.mark.slow  # a few seconds of DES
async def test_a_backend_naming_three_phases_for_one_phases_amps_turns_it_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The amps worked out for one phase but three named: each charger may draw three times its share."""
    within = grid_limits.amps_within
    monkeypatch.setattr(grid_limits, "amps_within", lambda w, phases=1: within(w, 1))
    assert red_on_the_grid(await run_scenario(scenario("feeder-limit-three-phase")))


@pytest.mark.slow  # an hour played live
async def test_three_phase_chargers_taking_amps_hold_the_feeders_live() -> None:
    result = await run_scenario(live("feeder-limit-three-phase", minutes=60))
    assert not red_on_the_grid(result), result.failures
    assert result.report.summary["grid"]["overloads"] == 0
    assert result.report.summary["grid"]["feeder_peak_w"] > 20_000  # three phases' worth was drawn


@pytest.mark.slow  # a few seconds of DES
async def test_dno_flex_event_pauses_cars_for_its_window_only() -> None:
    result = await run_scenario(scenario("dno-flex-event"))
    assert result.ok, result.failures
    f1 = result.report.grid_feeders["F1"]
    during = [load for minute, load in zip(f1["minute"], f1["load_w"], strict=True) if 41 <= minute < 70]
    assert during and max(during) <= 9_000


def allocate_without_events(*args: Any, **kwargs: Any) -> Any:
    """The grid's allocation as if no flexibility event had been announced."""
    sites, feeders, charging, _events, at = args
    return allocate(sites, feeders, charging, [], at, **kwargs)


@pytest.mark.slow  # a few seconds of DES; live plays 75 minutes, past the event's end
@pytest.mark.parametrize("engine", ["des", "live"])
async def test_a_backend_deaf_to_flexibility_events_turns_dno_flex_event_red(
    monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    monkeypatch.setattr("chargeshare.services.grid.allocate", allocate_without_events)
    played = scenario("dno-flex-event") if engine == "des" else live("dno-flex-event", minutes=75)
    assert red_on_the_grid(await run_scenario(played))


@pytest.mark.slow  # 150 simulated minutes live: about 15 real seconds
async def test_feeder_limit_holds_live_over_real_websockets() -> None:
    result = await run_scenario(live("feeder-limit"))
    assert result.ok, result.failures
    assert result.report.params["engine"] == "live"
    measured = result.report.summary["grid"]
    assert measured["sites"] == 12 and measured["overloads"] == 0
    assert measured["feeder_peak_w"] >= 15_000  # the feeders were used, up to their limits
    assert set(result.report.grid_feeders) == {"F1", "F2"}


@pytest.mark.slow  # an hour simulated live: a few real seconds
async def test_a_live_charger_ignoring_its_profiles_turns_feeder_limit_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(VirtualCharger, "_shared_limit_w", lambda self, c, at: c.max_power_w)
    assert red_on_the_grid(await run_scenario(live("feeder-limit", minutes=60)))


@pytest.mark.slow  # an hour simulated live: a few real seconds
async def test_a_live_backend_that_never_shares_a_feeder_turns_feeder_limit_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(GridService, "rebalance", lambda self: [])
    assert red_on_the_grid(await run_scenario(live("feeder-limit", minutes=60)))


@pytest.mark.slow  # 150 simulated minutes live: about 15 real seconds
async def test_dno_flex_event_pauses_live_cars_for_its_window_only() -> None:
    result = await run_scenario(live("dno-flex-event"))
    assert result.ok, result.failures
    assert result.report.summary["grid"]["paused_samples"] > 0
    f1 = result.report.grid_feeders["F1"]
    during = [load for minute, load in zip(f1["minute"], f1["load_w"], strict=True) if 41 <= minute < 70]
    assert during and max(during) <= 9_000


TINY_GRID = """\
name: tiny-grid
engine: des
seed: 3
duration_minutes: 30
speed: 600
city: bristol
fleet: {chargers: 4, radius_m: 2000, powers_w: [7400]}
grid: {feeders: 1, feeder_limit_w: 9000, house_load_w: 1000}
drivers:
  count: 4
  arrival_window: 0.1
  travel_minutes: {min: 1, max: 2}
  cancel_rate: 0
  no_show_rate: 0
  radius_m: 2000
expect:
  invariants: all
  metrics:
    grid.overloads: {equals: 0}
"""


@pytest.mark.slow  # half an hour simulated live: a few real seconds
def test_scenario_run_engine_live_runs_a_des_grid_file_live(tmp_path: Path) -> None:
    path, out = tmp_path / "tiny-grid.yaml", tmp_path / "out.json"
    path.write_text(TINY_GRID)
    result = runner.invoke(app, ["scenario", "run", str(path), "--engine", "live", "--json", str(out)])
    assert result.exit_code == 0, result.output
    (run,) = json.loads(out.read_text())["scenarios"]
    assert run["report"]["params"]["engine"] == "live"
    grid = run["report"]["summary"]["grid"]
    assert (grid["sites"], grid["feeders"], grid["overloads"]) == (4, 1, 0) and grid["samples"] > 0


def test_scenario_run_engine_des_refuses_backend_processes() -> None:
    path = ROOT / "scenarios" / "cluster" / "cluster-happy-path.yaml"
    result = runner.invoke(app, ["scenario", "run", str(path), "--engine", "des"])
    assert result.exit_code == 2 and "the DES engine runs the backend in its own process" in result.output
