"""The scenarios replaying the money path's and the charger link's hard cases (a slow provider, a
spoofing charger, racing cancels, racing payouts): each passes on PostgreSQL as on SQLite, and each
goes red on a build with its fix taken away (mutation tests). Requests can only race on PostgreSQL:
SQLite runs one write transaction at a time, so the racing mutants run there."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chargeshare.adapters.payments_worker import PaymentsWorker
from chargeshare.adapters.sql.bookings import SqlBookings
from chargeshare.cli.app import app
from chargeshare.domain import ledger
from chargeshare.services.charging import ChargingService
from chargeshare.services.settlement import SettlementService
from simulators.scenario import load
from simulators.scenario_runner import ScenarioResult, run_scenario
from tests.busy_cores import busy_cores
from tests.cli_runner import CliRunner

ROOT = Path(__file__).resolve().parents[2]
FAULT_SCENARIOS = ["slow-provider", "spoofed-charger", "racing-cancels", "racing-payouts"]
runner = CliRunner()


def scenario(name: str) -> Path:
    return ROOT / "scenarios" / f"{name}.yaml"


def failed_on(result: ScenarioResult, *starts: str) -> bool:
    return not result.ok and all(any(f.startswith(s) for f in result.failures) for s in starts)


def test_the_fault_scenarios_ship() -> None:
    for name in FAULT_SCENARIOS:
        assert load(scenario(name)).params.faults, name


@pytest.mark.slow
async def test_an_unregistered_spoofer_is_refused_where_unknown_chargers_are_not_allowed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "refused.yaml"
    path.write_text(
        "name: refused\nduration_minutes: 30\nspeed: 600\nfleet: {chargers: 1, powers_w: [7400]}\n"
        "drivers: {count: 1, arrival_window: 0, cancel_rate: 0, travel_minutes: {min: 5, max: 5}}\n"
        "faults:\n  - {at_minute: 1, action: spoofed_charger, spoofer: unregistered}\n"
        "expect:\n  metrics:\n    fault_outcomes.spoof_links_refused: {equals: 1}\n"
        "    fault_outcomes.spoofs: {equals: 0}\n    security_events: {equals: 0}\n"
    )
    result = await run_scenario(load(path))
    assert result.ok, result.failures


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("name", FAULT_SCENARIOS)
def test_the_fault_scenarios_pass_on_postgres(postgres_url: str, name: str) -> None:
    args = ["scenario", "run", str(scenario(name)), "--backend", "postgres", "--postgres-url", postgres_url]
    with busy_cores():  # as the shipped scenarios run on SQLite: on a loaded machine
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output


# ---- mutants: each scenario must catch its fix taken away --------------------------------------------
@pytest.mark.slow
async def test_without_the_charger_binding_the_spoofed_charger_scenario_goes_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Mutant: no frame is ever taken as naming another charger's transaction.
    monkeypatch.setattr(ChargingService, "_foreign", lambda *_args: False)
    result = await run_scenario(load(scenario("spoofed-charger")))
    assert failed_on(
        result, "expectation: fault_outcomes.spoofs_applied = ", "expectation: security_events = "
    ), result.failures


@pytest.mark.slow
async def test_with_payments_worked_on_the_event_loop_the_slow_provider_scenario_goes_red(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Mutant: the server starts its payments worker but works queued steps where they were queued,
    # so a stop or a no-show's fee waits on the provider in the charger's frame handler, on the loop.
    start = PaymentsWorker.start

    def start_then_work_inline(self: PaymentsWorker) -> None:
        start(self)
        self.settlement.on_queued = None

    monkeypatch.setattr(PaymentsWorker, "start", start_then_work_inline)
    result = await run_scenario(load(scenario("slow-provider")))
    assert failed_on(result, "expectation: fault_outcomes.provider_calls_timed_out = "), result.failures


def _side_by_side(parties: int) -> Callable[[], None]:
    """Hold each caller until `parties` have arrived: the worst interleaving of a race, every time.
    The timeout only keeps a mutant that cannot line them up from hanging."""
    barrier = threading.Barrier(parties, timeout=10)

    def wait() -> None:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            barrier.reset()

    return wait


@pytest.mark.postgres
@pytest.mark.slow
async def test_without_compare_and_set_the_racing_cancels_scenario_goes_red(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    # Mutant: a booking's status change no longer checks the status it was read in. Both cancels of
    # a pair read the booking before either writes.
    update = SqlBookings.update
    both_read = _side_by_side(2)

    def update_whatever_it_was(self: SqlBookings, booking_id: int, status: Any, **kw: Any) -> bool:
        if kw.get("cancelled_by") is not None:
            both_read()
        return update(self, booking_id, status, **{**kw, "expected": None})

    monkeypatch.setattr(SqlBookings, "update", update_whatever_it_was)
    result = await run_scenario(load(scenario("racing-cancels")), database_url=postgres_url)
    assert failed_on(result, "expectation: fault_outcomes.racing_cancels_both_won = "), result.failures


@pytest.mark.postgres
@pytest.mark.slow
async def test_without_the_payout_lock_the_racing_payouts_scenario_goes_red(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    # Mutant: no lock on the host, and a payout id of its own for every payout (not counted from
    # the host's payouts so far). Every racing request reads the balance before any pays it.
    all_read = _side_by_side(load(scenario("racing-payouts")).params.faults[0].count)

    def pay_out_unlocked(self: SettlementService, host_id: int) -> int:
        account = ledger.host_payable(host_id)
        with self.store.transaction() as tx:
            balance = -ledger.posted_balances(tx.ledger.entries(account=account)).get(account, 0)
            all_read()
            if balance <= 0:
                return 0
            entry = ledger.payout(f"payout:{host_id}:{uuid.uuid4().hex}", host_id, balance, self.clock.now())
            tx.ledger.add([entry])
        return balance

    monkeypatch.setattr(SettlementService, "_pay_out", pay_out_unlocked)
    result = await run_scenario(load(scenario("racing-payouts")), database_url=postgres_url)
    assert failed_on(
        result,
        "expectation: fault_outcomes.hosts_paid_twice = ",
        "expectation: fault_outcomes.payouts_off_pence = ",
        "invariant payouts_within_earnings",
    ), result.failures
