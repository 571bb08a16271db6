"""The smart charging regulations' scenarios: `random-delay` (200 bookings at one instant, in the
DES) and `off-peak-default` (live, and the same file in the DES), each green as shipped and red on
a build with one duty taken away (mutation tests): a charger without the delay, one deaf to the
driver's override and to DSR, one ignoring its default charging hours, and a backend that never
tells the charger of a driver's override."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from chargeshare.domain.smart_charge_points import SmartSettings, Suppressed, delay_suppressed, draw_delay
from chargeshare.services.smart_charging import SmartChargingService
from simulators.scenario import Scenario, load
from simulators.scenario_runner import ScenarioResult, run_scenario
from simulators.smart_gate import SmartGate
from tests.busy_cores import busy_cores

ROOT = Path(__file__).resolve().parents[2]


def scenario(name: str, engine: str | None = None) -> Scenario:
    loaded = load(ROOT / "scenarios" / f"{name}.yaml")
    return loaded if engine is None else replace(loaded, engine=engine)


def failed_on(result: ScenarioResult, *metrics: str) -> bool:
    return not result.ok and all(
        any(f.startswith(f"expectation: smart_charging.{m} = ") for f in result.failures) for m in metrics
    )


def no_delay(self: SmartGate, settings: SmartSettings) -> tuple[int | None, Suppressed | None]:
    """A charger that never waits (yet says why when the rules suppress the delay)."""
    why = delay_suppressed(settings, end_user_override=self.end_user_override)
    return (None, why) if why is not None else (0, None)


def deaf_to_overrides(self: SmartGate, settings: SmartSettings) -> tuple[int | None, Suppressed | None]:
    """A charger that draws a delay whatever the driver, the owner or DSR say."""
    return draw_delay(self.rng, settings.randomised_delay_max_s), None


def test_the_smart_charging_scenarios_ship() -> None:
    random_delay, off_peak = scenario("random-delay"), scenario("off-peak-default")
    assert random_delay.engine == "des" and random_delay.params.drivers == 200
    assert random_delay.params.fleet.smart_charge_points and random_delay.params.fleet.dsr_chargers
    assert off_peak.engine == "live" and off_peak.params.behaviour.override_rate > 0


@pytest.mark.slow
async def test_random_delay_spreads_the_starts_and_honours_overrides_and_dsr() -> None:
    result = await run_scenario(scenario("random-delay"))
    assert result.ok, result.failures
    measured = result.report.summary["smart_charging"]
    assert measured["delays_drawn"] + measured["suppressed_end_user"] + measured["suppressed_dsr"] == 200


@pytest.mark.slow
async def test_a_charger_without_the_delay_turns_random_delay_red(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SmartGate, "decide_delay", no_delay)
    result = await run_scenario(scenario("random-delay"))
    assert failed_on(result, "delay_max_s", "delay_minutes_covered"), result.failures


@pytest.mark.slow
async def test_a_charger_deaf_to_overrides_and_dsr_turns_random_delay_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(SmartGate, "decide_delay", deaf_to_overrides)
    result = await run_scenario(scenario("random-delay"))
    assert failed_on(result, "override_held_max_s", "dsr_held_max_s", "suppressed_dsr"), result.failures


async def test_off_peak_default_holds_in_the_des_too() -> None:
    result = await run_scenario(scenario("off-peak-default", engine="des"))
    assert result.ok, result.failures
    assert result.report.summary["smart_charging"]["peak_wh_default_hours"] == 0


async def test_a_charger_ignoring_its_default_hours_turns_off_peak_default_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(SmartGate, "blocks", lambda self, at, settings: False)
    result = await run_scenario(scenario("off-peak-default", engine="des"))
    assert failed_on(result, "peak_wh_default_hours"), result.failures


async def test_a_backend_that_never_sends_the_override_turns_off_peak_default_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(SmartChargingService, "_on_session_started", lambda self, event: None)
    result = await run_scenario(scenario("off-peak-default", engine="des"))
    assert failed_on(result, "peak_wh_overridden", "suppressed_end_user"), result.failures


@pytest.mark.slow
async def test_off_peak_default_live_and_its_mutant(monkeypatch: pytest.MonkeyPatch) -> None:
    # With every core kept busy: the override's trip over the wire must not decide the outcome.
    with busy_cores():
        result = await run_scenario(scenario("off-peak-default"))
    assert result.ok, result.failures
    monkeypatch.setattr(SmartGate, "blocks", lambda self, at, settings: False)
    mutant = await run_scenario(scenario("off-peak-default"))
    assert failed_on(mutant, "peak_wh_default_hours"), mutant.failures
