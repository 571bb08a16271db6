"""HMRC platform reporting at the end of a run: every run's summary reconciles each year's report
with the ledger (`dpi_discrepancies`). The DES crosses the UK's quarter and year ends in virtual
time in under a second; the `dpi-year` scenario file runs live (its payouts are racing requests,
which the DES does not model); and a build that reports what drivers paid as the hosts'
consideration turns both red."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chargeshare.domain.ledger import JournalEntry
from chargeshare.domain.statement import Earning, earnings_by_host
from simulators.des.engine import DesParams, run_des
from simulators.scenario import load
from simulators.scenario_runner import run_scenario

ROOT = Path(__file__).resolve().parents[2]


def gross_as_consideration(entries: Iterable[JournalEntry]) -> dict[int, list[Earning]]:
    """The classic mistake: what the driver paid reported as what the host was credited."""
    return {
        host: [Earning(e.booking_id, e.at, e.consideration, e.consideration) for e in earned]
        for host, earned in earnings_by_host(entries).items()
    }


@pytest.mark.parametrize(
    "start",
    [
        datetime(2026, 12, 31, 20, tzinfo=UTC),  # into 2027: two reportable periods
        datetime(2026, 3, 31, 19, tzinfo=UTC),  # across midnight BST: Q1 into Q2
    ],
    ids=["new-year", "end-of-march"],
)
def test_a_des_run_across_a_quarter_end_reconciles_every_year(start: datetime) -> None:
    report = run_des(DesParams(chargers=4, drivers=20, duration_s=6 * 3600, seed=5, start=start)).report
    s = report.summary
    assert report.ok and s["sessions"] > 0
    assert s["dpi_sellers"] >= 4 and s["dpi_discrepancies"] == 0


def test_a_des_run_whose_report_misreads_the_ledger_shows_discrepancies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("chargeshare.domain.platform_reporting.earnings_by_host", gross_as_consideration)
    s = run_des(DesParams(chargers=3, drivers=12, duration_s=4 * 3600, seed=5)).report.summary
    assert s["sessions"] > 0 and s["dpi_discrepancies"] > 0


@pytest.mark.slow
async def test_the_dpi_year_scenario_goes_red_when_consideration_is_reported_gross(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scenario = load(ROOT / "scenarios" / "dpi-year.yaml")
    monkeypatch.setattr("chargeshare.domain.platform_reporting.earnings_by_host", gross_as_consideration)
    result = await run_scenario(scenario)
    assert not result.ok
    assert any(f.startswith("expectation: dpi_discrepancies = ") for f in result.failures), result.failures
