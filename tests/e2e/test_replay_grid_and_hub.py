"""Replays of recorded live runs that set up more than hosts and chargers: a grid run (feeders,
sites, a flexibility event) replays with `grid_within_limits` judged from the chargers' readings,
and a mutated trace (a feeder limit lowered, the event dropped) is caught, as is a charger that
ignored its profiles, from its own frames; a fleet hub's run
replays with its operator, so the fleet's account, blocks and cancellations follow as recorded.
Each trace is also replayed as version 1 (no setup records), as an older one would be."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chargeshare.cli.app import app as cli
from chargeshare.domain.errors import DatabaseBusy
from chargeshare.services.grid import GridService
from simulators.charger import VirtualCharger
from tests.cli_runner import CliRunner

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

runner = CliRunner()

# Four homes on one feeder; the DNO lowers it to 6 kW for ten minutes (forty simulated minutes at
# 240x: ten real seconds). A replay matches limits within a simulated minute; at 600x that is 100 ms
# of real time, which a loaded machine's scheduling alone can exceed.
GRID = """
name: small-flex
description: four homes on one feeder with a flexibility event
engine: live
seed: 19
speed: 240
start: "2026-03-02T17:00:00Z"
duration_minutes: 40
city: bristol
fleet: {chargers: 4, radius_m: 2000, powers_w: [7400], protocols: ["1.6", "2.0.1"]}
grid:
  feeders: 1
  feeder_limit_w: 12000
  site_limit_w: 13800
  house_load_w: 1000
  flex_events: [{feeder: 1, at_minute: 15, minutes: 10, limit_w: 6000}]
drivers:
  count: 4
  arrival_window: 0.1
  travel_minutes: {min: 1, max: 3}
  cancel_rate: 0
  no_show_rate: 0
  radius_m: 2000
expect:
  invariants: all
  metrics: {grid.flex_events: {equals: 1}, grid.paused_samples: {at_least: 1}}
"""

# A fleet's Monday night blocks on two of three chargers; a host cancels one inside the notice
# (four simulated hours at 2400x: a few real seconds).
HUB = """
name: small-hub
description: a fleet's night blocks on two chargers, one cancelled late
engine: live
seed: 23
speed: 2400
start: "2026-04-27T16:00:00Z"
duration_minutes: 240
city: leeds
fleet: {chargers: 3, radius_m: 2500, powers_w: [7400], price_per_kwh: {min: 30, max: 40}}
drivers:
  count: 4
  arrival_window: 0.5
  cancel_rate: 0
  travel_minutes: {min: 10, max: 30}
  radius_m: 2500
fleet_hub:
  chargers: 2
  days: [0, 1, 2, 3, 4]
  start: "20:00"
  end: "06:00"
  notice_hours: 48
  late_penalty: 2500
  van_wh: 10000
  van_arrival_max_minutes: 10
  late_cancels: 1
  pay_percent: 50
expect:
  invariants: all
  metrics: {fleet_hub.occurrences: {equals: 2}, fleet_hub.occurrences_cancelled_late: {equals: 1}}
"""


@dataclass(frozen=True)
class Recorded:
    trace: Path
    summary: dict[str, Any]


def record(tmp: Path, name: str, text: str, *, expect_exit: int = 0) -> Recorded:
    scenario, out = tmp / f"{name}.yaml", tmp / f"{name}.json"
    scenario.write_text(text)
    args = ["scenario", "run", str(scenario), "--trace-dir", str(tmp / "traces"), "--json", str(out)]
    result = runner.invoke(cli, args)
    assert result.exit_code == expect_exit, result.stdout
    (run,) = json.loads(out.read_text())["scenarios"]
    return Recorded(tmp / "traces" / f"{name}.jsonl", run["report"]["summary"])


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    yield record(tmp_path_factory.mktemp("grid"), "small-flex", GRID)


@pytest.fixture(scope="module")
def hub_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    yield record(tmp_path_factory.mktemp("hub"), "small-hub", HUB)


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def replay(tmp: Path, lines: list[dict[str, Any]], expect_exit: int) -> dict[str, Any]:
    trace, report = tmp / "trace.jsonl", tmp / "replay.json"
    trace.write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = runner.invoke(cli, ["replay", str(trace), "--json", str(report)])
    assert result.exit_code == expect_exit, result.stdout
    body: dict[str, Any] = json.loads(report.read_text())
    return body


def as_version_1(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    setup = ("feeder", "site", "flex_event", "operator")
    return [{**x, "version": 1} if x["kind"] == "header" else x for x in lines if x["kind"] not in setup]


def invariant(body: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in body["invariants"] if r["name"] == name)
    return found


def test_a_live_grid_run_replays_with_its_grid_checked(grid_run: Recorded, tmp_path: Path) -> None:
    kinds = [x["kind"] for x in lines_of(grid_run.trace)]
    assert (kinds.count("feeder"), kinds.count("site"), kinds.count("flex_event")) == (1, 4, 1)
    body = replay(tmp_path, lines_of(grid_run.trace), 0)
    assert body["ok"] and invariant(body, "grid_within_limits")["ok"]
    assert body["divergence_count"] == 0, body["divergences"]
    assert body["notes"] == []
    live, again = grid_run.summary, body["summary"]
    for key in ("bookings", "sessions", "energy_wh", "captured_pence"):
        assert again[key] == live[key], key
    assert (again["grid"]["feeders"], again["grid"]["sites"], again["grid"]["flex_events"]) == (1, 4, 1)
    assert again["grid"]["paused_samples"] > 0  # the event held cars at 0 W, as the chargers said


def test_a_feeder_limit_lowered_in_the_trace_is_caught(grid_run: Recorded, tmp_path: Path) -> None:
    lines = [{**x, "limit_w": 9_000} if x["kind"] == "feeder" else x for x in lines_of(grid_run.trace)]
    body = replay(tmp_path, lines, 1)
    assert [r["name"] for r in body["invariants"] if not r["ok"]] == ["grid_within_limits"]
    assert "over its 9000 W limit" in invariant(body, "grid_within_limits")["failures"][0]
    assert any("is not the one it ran with" in d for d in body["divergences"])


def test_a_flexibility_event_dropped_from_the_trace_diverges(grid_run: Recorded, tmp_path: Path) -> None:
    # Without the event the chargers' loads are within every limit left, but the backend's limits
    # during it (cars paused at 0 W) are ones this setup never decides.
    lines = [x for x in lines_of(grid_run.trace) if x["kind"] != "flex_event"]
    body = replay(tmp_path, lines, 0)
    assert invariant(body, "grid_within_limits")["ok"]
    assert body["divergence_count"] >= 1
    assert all("is not the one it ran with" in d for d in body["divergences"])
    assert any("the recorded backend limited it to 0 W" in d for d in body["divergences"])


def test_a_charger_ignoring_its_profiles_is_caught_from_its_own_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(VirtualCharger, "_shared_limit_w", lambda self, c, at: c.max_power_w)
    deaf = record(tmp_path, "small-flex", GRID, expect_exit=1)
    monkeypatch.undo()
    body = replay(tmp_path, lines_of(deaf.trace), 1)
    assert [r["name"] for r in body["invariants"] if not r["ok"]] == ["grid_within_limits"]
    # The backend decided and sent the same limits: the chargers drew past them.
    assert body["divergence_count"] == 0, body["divergences"]


def test_the_grid_run_as_a_version_1_trace_replays_without_the_grid_check(
    grid_run: Recorded, tmp_path: Path
) -> None:
    body = replay(tmp_path, as_version_1(lines_of(grid_run.trace)), 0)
    assert body["ok"] and "grid_within_limits" not in {r["name"] for r in body["invariants"]}
    assert len(body["notes"]) == 1 and "grid_within_limits is not checked" in body["notes"][0]
    assert body["summary"]["sessions"] == grid_run.summary["sessions"]


def test_a_live_hub_run_replays_with_its_operator(hub_run: Recorded, tmp_path: Path) -> None:
    assert sum(x["kind"] == "operator" for x in lines_of(hub_run.trace)) == 1
    body = replay(tmp_path, lines_of(hub_run.trace), 0)
    assert body["ok"] and body["notes"] == []
    assert body["divergence_count"] == 0, body["divergences"]
    live, again = hub_run.summary, body["summary"]
    for key in ("bookings", "sessions", "energy_wh", "captured_pence", "cancelled_by_host"):
        assert again[key] == live[key], key
    for key in ("occurrences", "sessions", "energy_wh", "penalties_pence", "charged_pence"):
        assert again["fleet_hub"][key] == live["fleet_hub"][key], key


def test_the_hub_run_as_a_version_1_trace_diverges_from_the_operators_first_call(
    hub_run: Recorded, tmp_path: Path
) -> None:
    body = replay(tmp_path, as_version_1(lines_of(hub_run.trace)), 0)
    assert len(body["notes"]) == 1 and "no operator accounts" in body["notes"][0]
    assert any("POST /fleets answered 401, recorded 201" in d for d in body["divergences"])
    assert body["summary"]["fleet_hub"]["occurrences"] == 0


def test_a_busy_store_counting_limits_delivered_is_a_divergence_not_a_crash(
    grid_run: Recorded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def busy(_self: GridService, _cp_id: str, _decision: int) -> None:
        raise DatabaseBusy("the database is busy: a lock was not granted in time", 0.1)

    monkeypatch.setattr(GridService, "limits_delivered", busy)
    body = replay(tmp_path, lines_of(grid_run.trace), 0)
    assert any("could not be counted delivered" in d for d in body["divergences"]), body["divergences"]
