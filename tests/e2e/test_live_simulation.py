"""A small live simulation end to end: real sockets, scaled clock, invariants at the end."""

from __future__ import annotations

import pytest

from simulators.live import LiveParams, run_live

pytestmark = pytest.mark.e2e


async def test_small_fleet_keeps_every_invariant() -> None:
    report = await run_live(LiveParams(chargers=6, drivers=12, duration_s=90 * 60, seed=3, speed=900))
    failed = [r for r in report.invariants if not r.ok]
    assert failed == [] and report.errors == []
    s = report.summary
    assert s["sessions"] > 0 and s["energy_wh"] > 0
    assert s["captured_pence"] == s["host_payouts_pence"] + s["platform_fees_pence"] > 0
    assert sum(s["driver_outcomes"].values()) == 12
