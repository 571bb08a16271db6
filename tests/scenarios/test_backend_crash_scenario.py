"""The backend-crash scenario: the backend runs as a real `serve` process that is killed mid-session
and later dies at a failpoint of a stop; it passes on SQLite and PostgreSQL, and goes red on a build
whose stop and capture commit apart. The mutant lives in the server process, so it is planted there
as a `sitecustomize` module on the process's path (Python imports it at start)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chargeshare.cli.app import app
from simulators.scenario import load
from simulators.scenario_runner import run_scenario
from tests.busy_cores import busy_cores
from tests.cli_runner import CliRunner

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "backend-crash-mid-session.yaml"
runner = CliRunner()

# Mutant: the capture is decided in the stop's unit of work but queued in one of its own after the
# stop has committed (and after the stop-committed failpoint): two transactions, as before the outbox.
CAPTURE_APART = """
from chargeshare.services.settlement import SettlementService

_queue_capture, _queued = SettlementService.queue_capture, SettlementService.queued
_decided = {}


def queue_capture(self, tx, booking_id, cost):
    _decided[booking_id] = cost


def queued(self, booking_id):
    cost = _decided.pop(booking_id, None)
    if cost is not None:
        with self.store.transaction() as tx:
            _queue_capture(self, tx, booking_id, cost)
    _queued(self, booking_id)


SettlementService.queue_capture = queue_capture
SettlementService.queued = queued
"""


def test_the_scenario_runs_the_backend_as_a_process_that_crashes() -> None:
    params = load(SCENARIO).params
    assert params.processes == 0  # asked for by its faults, not by the file
    assert [(f.action, f.failpoint) for f in params.faults] == [
        ("backend_crash", None),
        ("backend_crash", "stop-committed"),
    ]


@pytest.mark.postgres
@pytest.mark.slow
def test_the_backend_crash_scenario_passes_on_postgres(postgres_url: str) -> None:
    args = ["scenario", "run", str(SCENARIO), "--backend", "postgres", "--postgres-url", postgres_url]
    with busy_cores():
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output


@pytest.mark.slow
async def test_with_stop_and_capture_committed_apart_the_scenario_goes_red(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sitecustomize.py").write_text(CAPTURE_APART)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    result = await run_scenario(load(SCENARIO))
    assert not result.ok
    assert any(f.startswith("invariant one_settlement_per_stopped_session") for f in result.failures), (
        result.failures
    )


WHILE_BOOKING = ROOT / "scenarios" / "backend-crash-while-booking.yaml"

# Mutant: the backend ignores the Idempotency-Key, so the app's copy of its booking request is a new
# request, refused by the booking the first one made (which no driver then knows of).
KEY_IGNORED = """
from chargeshare.services.booking import BookingService

_book = BookingService.book


def book(self, req, request_key=None):
    return _book(self, req)


BookingService.book = book
"""


@pytest.mark.slow
async def test_a_booking_request_sent_again_after_the_crash_finds_its_booking() -> None:
    result = await run_scenario(load(WHILE_BOOKING))
    assert result.ok, result.failures


@pytest.mark.slow
async def test_with_the_idempotency_key_ignored_the_booking_crash_scenario_goes_red(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sitecustomize.py").write_text(KEY_IGNORED)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    result = await run_scenario(load(WHILE_BOOKING))
    assert not result.ok
    assert any(f.startswith("expectation: bookings_no_driver_heard_of") for f in result.failures), (
        result.failures
    )
