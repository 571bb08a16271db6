"""The V2G scenario (DES): `v2g-peak-export`, green as shipped and red on a build with one duty taken
away (mutation tests): a car that ignores its driver's floor, a backend that reads the export from
the import register, one that rounds the credit up, and one that never lets the cars discharge."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from chargeshare.domain.v2g import ExportRecord, ExportTerms
from chargeshare.services.v2g import V2gService
from simulators.power import Vehicle
from simulators.scenario import Scenario, load
from simulators.scenario_runner import ScenarioResult, run_scenario

ROOT = Path(__file__).resolve().parents[2]


def scenario() -> Scenario:
    return load(ROOT / "scenarios" / "v2g-peak-export.yaml")


def red_on(result: ScenarioResult, invariant: str) -> bool:
    return not result.ok and any(f.startswith(f"invariant {invariant}: ") for f in result.failures)


def test_the_v2g_scenario_ships_with_its_guests_on_2_1_chargers() -> None:
    s = scenario()
    assert s.engine == "des" and s.params.fleet.protocols == ("2.1",)
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
async def test_a_car_ignoring_its_floor_turns_v2g_peak_export_red(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Vehicle, "discharge_room_wh", lambda self: self.soc_wh)
    assert red_on(await run_scenario(scenario()), "export_above_soc_floor")


@pytest.mark.slow  # a few seconds of DES
async def test_a_backend_netting_export_off_import_turns_v2g_peak_export_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("chargeshare.ocpp.csms_v201.EXPORT_REGISTER", "Energy.Active.Import.Register")
    assert red_on(await run_scenario(scenario()), "import_export_registers_apart")


@pytest.mark.slow  # a few seconds of DES
async def test_a_credit_rounded_up_turns_v2g_peak_export_red(monkeypatch: pytest.MonkeyPatch) -> None:
    def rounded_up(record: ExportRecord, terms: ExportTerms) -> ExportRecord:
        wh = record.metered_wh
        return replace(record, exported_wh=wh, credit=-(-wh * terms.price_per_kwh // 1000))

    monkeypatch.setattr("chargeshare.services.v2g.settle_export", rounded_up)
    assert red_on(await run_scenario(scenario()), "export_credit_matches_export")


@pytest.mark.slow  # a few seconds of DES
async def test_a_backend_that_never_asks_for_discharge_turns_v2g_peak_export_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def silent(self: V2gService, event: Any) -> None:
        return None

    monkeypatch.setattr(V2gService, "_on_session_started", silent)
    result = await run_scenario(scenario())
    assert not result.ok and any("v2g.exported_wh" in f for f in result.failures), result.failures
