"""The dynamic pricing day (`dynamic-pricing-day`, DES): green as shipped, with every booking made
with the quote held for its driver, billed at it, and some drivers priced out; red on a build that
writes bookings a penny above the price they were quoted, and on one that quotes them a penny above
the quote held for them (captures follow the booking, so only the quote tells)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.scenario import load
from simulators.scenario_runner import run_scenario
from tests.pricing_mutants import penny_above, penny_above_held

ROOT = Path(__file__).resolve().parents[2]
DAY = ROOT / "scenarios" / "dynamic-pricing-day.yaml"


def test_the_dynamic_pricing_day_ships() -> None:
    day = load(DAY)
    assert day.engine == "des" and day.params.fleet.pricing == "dynamic"
    assert day.params.behaviour.max_price == (25, 50) and day.params.duration_s == 24 * 3600


@pytest.mark.slow
async def test_the_day_bills_every_booking_at_its_quote() -> None:
    result = await run_scenario(load(DAY))
    assert result.ok, result.failures
    pricing = result.report.summary["pricing"]
    assert pricing["quoted_bookings"] == pricing["dynamic_quotes"] == result.report.summary["bookings"]
    checked = {i.name: i for i in result.report.invariants}["capture_matches_quote"]
    assert checked.ok and checked.checked == pricing["quoted_bookings"]
    assert pricing["held_quote_bookings"] == pricing["quoted_bookings"]


@pytest.mark.slow
async def test_bookings_priced_above_their_quote_turn_the_day_red(monkeypatch: pytest.MonkeyPatch) -> None:
    penny_above(monkeypatch)
    result = await run_scenario(load(DAY))
    assert not result.ok
    failed = {i.name for i in result.report.invariants if not i.ok}
    assert failed == {"capture_matches_quote"}, result.failures


@pytest.mark.slow
async def test_bookings_priced_above_their_held_quote_turn_the_day_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    penny_above_held(monkeypatch)
    result = await run_scenario(load(DAY))
    assert not result.ok
    failed = {i.name for i in result.report.invariants if not i.ok}
    assert failed == {"capture_matches_quote"}, result.failures
