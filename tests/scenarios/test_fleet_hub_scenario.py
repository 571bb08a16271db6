"""`fleet-hub-week`: a fleet's night blocks on three hosts' chargers for a week across a month's end,
drivers booking around them. Green as shipped, the same bytes for the same seed, and red on a build
with one of its duties taken away (mutation tests): an invoice issued without its ledger entry, a
host's late cancellation without the contract's penalty, and block sessions not settled on account."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chargeshare.adapters.sql.fleet import SqlFleets
from simulators.scenario import ScenarioError, load
from simulators.scenario_runner import ScenarioResult, run_scenario

ROOT = Path(__file__).resolve().parents[2]
HUB = ROOT / "scenarios" / "fleet-hub-week.yaml"


def failed_on(result: ScenarioResult, *starts: str) -> bool:
    return not result.ok and all(any(f.startswith(s) for f in result.failures) for s in starts)


def test_the_hub_scenario_ships_for_the_des() -> None:
    hub = load(HUB)
    assert hub.engine == "des" and hub.params.fleet_hub is not None
    assert hub.params.fleet_hub.chargers == 3 and hub.params.fleet_hub.late_cancels == 2


def test_a_fleet_hub_outside_the_des_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "live-hub.yaml"
    path.write_text("name: x\nfleet: {chargers: 2}\ndrivers: {count: 1}\nfleet_hub:\n  chargers: 3\n")
    with pytest.raises(ScenarioError) as refused:
        load(path)
    assert ":4: fleet_hub: a fleet hub runs in the DES engine only" in str(refused.value)
    assert ":5: fleet_hub.chargers: more chargers than the fleet's 2" in str(refused.value)


@pytest.mark.slow
async def test_the_hub_week_passes_and_is_the_same_bytes_for_the_same_seed() -> None:
    first, second = await run_scenario(load(HUB)), await run_scenario(load(HUB))
    assert first.ok, first.failures
    assert first.report.to_json() == second.report.to_json()
    hub = first.report.summary["fleet_hub"]
    # Monday to Wednesday nights' sessions and the penalties are April's; Thursday's and Friday's wait.
    assert hub["invoiced_pence"] + hub["unbilled_pence"] == hub["charged_pence"] - hub["penalties_pence"]
    assert hub["receivable_pence"] == hub["invoiced_pence"] - hub["paid_pence"]


@pytest.mark.slow
async def test_an_invoice_without_its_ledger_entry_turns_the_hub_week_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Mutant: the invoice is recorded but never moves the month's charges into the receivable.
    monkeypatch.setattr("chargeshare.services.fleet.invoice_entry", lambda *_a, **_k: None)
    result = await run_scenario(load(HUB))
    assert failed_on(result, "invariant fleet_receivable_is_invoiced_less_paid"), result.failures


@pytest.mark.slow
async def test_a_late_host_cancellation_without_the_penalty_turns_the_hub_week_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Mutant: a host cancelling a block occurrence inside the notice owes the fleet nothing.
    monkeypatch.setattr("chargeshare.services.booking.penalty_for_host_cancel", lambda *_a: None)
    result = await run_scenario(load(HUB))
    assert failed_on(result, "expectation: fleet_hub.penalties_pence = "), result.failures


@pytest.mark.slow
async def test_block_sessions_settled_as_card_bookings_turn_the_hub_week_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Mutant: the payments worker no longer knows a block occurrence when it sees one, and looks for
    # the card hold a fleet's booking never had.
    def never(_self: Any, _booking_id: int) -> None:
        return None

    monkeypatch.setattr(SqlFleets, "occurrence", never)
    result = await run_scenario(load(HUB))
    assert failed_on(result, "invariant captured_equals_metered_cost"), result.failures
