"""The V2G scenario: `v2g-peak-export`, green as shipped and red on a build with one duty taken away
(mutation tests): a car that ignores its driver's floor, a backend that reads the export from the
import register, one that rounds the credit up, and one that never lets the cars discharge. In the
DES as shipped, and live: guests book and set their terms over HTTP, and the backend allows the
transfer and sends the discharging profile to the live virtual chargers over real WebSockets."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from chargeshare.cli.app import app
from chargeshare.domain.v2g import ExportRecord, ExportTerms
from chargeshare.services.v2g import V2gService
from simulators.power import Vehicle
from simulators.scenario import Scenario, load
from simulators.scenario_runner import ScenarioResult, run_scenario
from tests.cli_runner import CliRunner

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def scenario() -> Scenario:
    return load(ROOT / "scenarios" / "v2g-peak-export.yaml")


def played(engine: str, *, live_minutes: int | None = None) -> Scenario:
    """The scenario under `engine`; live at its file's speed, over `live_minutes` if given (a
    mutant's duty shows within the first hours of the peak)."""
    s = scenario()
    if engine == "des":
        return s
    duration_s = s.params.duration_s if live_minutes is None else live_minutes * 60
    return dataclasses.replace(s, engine="live", params=dataclasses.replace(s.params, duration_s=duration_s))


def red_on(result: ScenarioResult, invariant: str) -> bool:
    return not result.ok and any(f.startswith(f"invariant {invariant}: ") for f in result.failures)


def test_the_v2g_scenario_ships_with_its_guests_on_2_1_chargers() -> None:
    s = scenario()
    assert s.engine == "des" and s.params.fleet.protocols == ("2.1",)
    assert s.params.speed == 1200  # live: about 23 real seconds
    assert s.params.v2g is not None
    assert (s.params.v2g.guests, s.params.v2g.export_price_per_kwh, s.params.v2g.soc_floor_pct) == (4, 25, 40)


@pytest.mark.slow  # a few seconds of DES
async def test_v2g_peak_export_credits_the_export_register_above_every_floor() -> None:
    result = await run_scenario(scenario())
    assert result.ok, result.failures
    v2g = result.report.summary["v2g"]
    assert v2g["sessions"] == 4 and v2g["lowest_soc_pct"] >= v2g["soc_floor_pct"] == 40
    names = {r.name for r in result.report.invariants}
    assert {
        "export_credit_matches_export",
        "export_above_soc_floor",
        "import_export_registers_apart",
    } <= names
    # Each car gives back what it holds above its floor, at 25p per kWh, rounded down per booking.
    assert 4 * 25_000 <= v2g["exported_wh"] <= 4 * 28_000
    assert v2g["credits_pence"] <= v2g["exported_wh"] * 25 // 1000


@pytest.mark.slow  # a few seconds of DES
async def test_v2g_peak_export_sold_to_the_hosts_homes_charges_each_host() -> None:
    s = scenario()
    assert s.params.v2g is not None and s.params.v2g.buyer == "grid"
    homes = dataclasses.replace(
        s, params=dataclasses.replace(s.params, v2g=dataclasses.replace(s.params.v2g, buyer="home"))
    )
    result = await run_scenario(homes)
    assert result.ok, result.failures
    v2g = result.report.summary["v2g"]
    assert v2g["sessions"] == 4 and v2g["home_credits_pence"] == v2g["credits_pence"] > 0
    checked = {r.name: r for r in result.report.invariants}
    assert checked["export_charged_to_one_buyer"].ok and checked["export_credit_matches_export"].ok
    assert result.report.params["v2g"]["buyer"] == "home"


@pytest.mark.slow  # 450 simulated minutes live: about 23 real seconds
async def test_v2g_peak_export_holds_live_over_real_websockets() -> None:
    result = await run_scenario(played("live"))
    assert result.ok, result.failures
    assert result.report.params["engine"] == "live" and result.report.params["v2g"]["guests"] == 4
    assert result.report.summary["sessions_by_protocol"] == {"ocpp21": 4}
    checked = {r.name: r.checked for r in result.report.invariants}
    assert checked["export_credit_matches_export"] == checked["import_export_registers_apart"] == 4
    v2g = result.report.summary["v2g"]
    assert v2g["sessions"] == 4 and v2g["lowest_soc_pct"] == v2g["soc_floor_pct"] == 40
    # Each car gives back at least what it held above its floor on arrival (24 kWh), and no more
    # than that and what it took before the peak; credited at 25p per kWh, rounded down per booking.
    assert 4 * 24_000 <= v2g["exported_wh"] <= 4 * 28_000
    most = v2g["exported_wh"] * 25 // 1000
    assert most - 4 < v2g["credits_pence"] <= most


@pytest.mark.slow  # a few seconds of DES; live plays the first 4 hours, past the cars' floors
@pytest.mark.parametrize("engine", ["des", "live"])
async def test_a_car_ignoring_its_floor_turns_v2g_peak_export_red(
    monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    monkeypatch.setattr(Vehicle, "discharge_room_wh", lambda self: self.soc_wh)
    assert red_on(await run_scenario(played(engine, live_minutes=240)), "export_above_soc_floor")


@pytest.mark.slow  # a few seconds of DES; live plays the first 90 minutes, into the peak
@pytest.mark.parametrize("engine", ["des", "live"])
async def test_a_backend_netting_export_off_import_turns_v2g_peak_export_red(
    monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    monkeypatch.setattr("chargeshare.ocpp.csms_v201.EXPORT_REGISTER", "Energy.Active.Import.Register")
    assert red_on(await run_scenario(played(engine, live_minutes=90)), "import_export_registers_apart")


def rounded_up(record: ExportRecord, terms: ExportTerms) -> ExportRecord:
    wh = record.metered_wh
    return replace(record, exported_wh=wh, credit=-(-wh * terms.price_per_kwh // 1000))


@pytest.mark.slow  # a few seconds of DES; live plays the first 90 minutes, into the peak
@pytest.mark.parametrize("engine", ["des", "live"])
async def test_a_credit_rounded_up_turns_v2g_peak_export_red(
    monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    monkeypatch.setattr("chargeshare.services.v2g.settle_export", rounded_up)
    assert red_on(await run_scenario(played(engine, live_minutes=90)), "export_credit_matches_export")


@pytest.mark.slow  # a few seconds of DES; live plays the whole scenario: about 23 real seconds
@pytest.mark.parametrize("engine", ["des", "live"])
async def test_a_backend_that_never_asks_for_discharge_turns_v2g_peak_export_red(
    monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    def silent(self: V2gService, event: Any) -> None:
        return None

    def nothing_owed(self: V2gService, *args: Any) -> list[Any]:
        return []

    # Neither at the start nor later: the export is also owed on connecting and to the sweep.
    monkeypatch.setattr(V2gService, "_on_session_started", silent)
    monkeypatch.setattr(V2gService, "exports_due_in", nothing_owed)
    result = await run_scenario(played(engine))
    assert not result.ok and any("v2g.exported_wh" in f for f in result.failures), result.failures


TINY_V2G = """\
name: tiny-v2g
engine: des
seed: 3
start: "2026-03-02T15:45:00Z"
duration_minutes: 150
speed: 1200
city: bristol
fleet: {chargers: 1, radius_m: 2000, powers_w: [7400], protocols: ["2.1"]}
drivers: {count: 0}
v2g: {guests: 1, hours: 2, arrival_soc_pct: 50, want_wh: 5000}
expect:
  invariants: all
  metrics:
    v2g.sessions: {equals: 1}
"""


@pytest.mark.slow  # 150 simulated minutes live: a few real seconds
def test_scenario_run_engine_live_runs_a_des_v2g_file_live(tmp_path: Path) -> None:
    path, out = tmp_path / "tiny-v2g.yaml", tmp_path / "out.json"
    path.write_text(TINY_V2G)
    result = runner.invoke(app, ["scenario", "run", str(path), "--engine", "live", "--json", str(out)])
    assert result.exit_code == 0, result.output
    (run,) = json.loads(out.read_text())["scenarios"]
    assert run["report"]["params"]["engine"] == "live"
    v2g = run["report"]["summary"]["v2g"]
    assert v2g["exported_wh"] > 0 and v2g["credits_pence"] == v2g["exported_wh"] * 25 // 1000
