"""`house-evening-peak`: every house draws a seeded UK evening and its site meter reports it; green
as shipped, in the DES and live, and red on a backend that ignores the house-load changes it is told
(a mutation test), since the run measures each site against what its house really draws."""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise
from pathlib import Path

import pytest

from chargeshare.services.grid import GridService, HouseLoadOutcome
from simulators.scenario import ScenarioError, load
from simulators.scenario_runner import run_scenario
from tests.scenarios.test_grid_scenarios import ROOT, live, red_on_the_grid, scenario

NAME = "house-evening-peak"


def test_house_evening_peak_ships_with_simulated_houses_on_a_40_a_supply() -> None:
    shipped = scenario(NAME)
    grid = shipped.params.fleet.grid
    assert grid is not None and grid.house_profile and grid.site_limit_w == 9_200
    assert shipped.engine == "des" and shipped.params.speed == 60  # live: slow enough to follow


def test_a_constant_house_load_beside_the_profile_is_refused(tmp_path: Path) -> None:
    text = (ROOT / "scenarios" / f"{NAME}.yaml").read_text()
    path = tmp_path / "both.yaml"
    path.write_text(text.replace("  house_load: profile\n", "  house_load: profile\n  house_load_w: 1000\n"))
    with pytest.raises(ScenarioError, match=r"grid\.house_load_w: a constant house load beside"):
        load(path)


def ignoring_house_loads(
    self: GridService,
    site_id: int,
    house_load_w: int,
    *,
    measured_at: datetime | None = None,
    host_id: int | None = None,
    decide: bool = True,
) -> HouseLoadOutcome:
    """A backend that answers a site meter but keeps the house load it had."""
    return HouseLoadOutcome(next(s for s in self.sites() if s.site_id == site_id), applied=True)


@pytest.mark.slow  # a few seconds of DES
async def test_house_evening_peak_holds_every_site_to_its_fuse_as_the_houses_vary() -> None:
    result = await run_scenario(scenario(NAME))
    assert result.ok, result.failures
    measured = result.report.summary["grid"]
    assert measured["sites"] == 12 and measured["overloads"] == 0
    # A sample at the instant a house changes, before its meter reports, may be above a limit; the
    # next, a minute on, is within it: the backend lowered the chargers at once.
    assert 0 < measured["over_limit_samples"] < measured["samples"] // 100
    for feeder in result.report.grid_feeders.values():
        over = [load > limit for load, limit in zip(feeder["load_w"], feeder["limit_w"], strict=True)]
        assert not any(a and b for a, b in pairwise(over))
        assert len(set(feeder["load_w"])) > 20  # the load follows its houses, plotted as it went


@pytest.mark.slow  # a few seconds of DES
async def test_a_backend_ignoring_house_load_changes_turns_house_evening_peak_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(GridService, "set_house_load", ignoring_house_loads)
    assert red_on_the_grid(await run_scenario(scenario(NAME)))


@pytest.mark.slow  # 45 simulated minutes live at the file's 60x: 45 real seconds
async def test_house_evening_peak_holds_live_with_meters_reporting_through_the_api() -> None:
    result = await run_scenario(live(NAME, minutes=45))
    assert result.ok, result.failures
    measured = result.report.summary["grid"]
    assert measured["sites"] == 12 and measured["overloads"] == 0


@pytest.mark.slow  # half an hour simulated live at the file's 60x: 30 real seconds
async def test_a_live_backend_ignoring_house_load_changes_turns_house_evening_peak_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(GridService, "set_house_load", ignoring_house_loads)
    assert red_on_the_grid(await run_scenario(live(NAME, minutes=30)))
