"""A small live simulation end to end: real sockets, scaled clock, invariants at the end."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from simulators.live import LiveParams, run_live
from simulators.report import summarise

pytestmark = pytest.mark.e2e


async def test_small_fleet_keeps_every_invariant() -> None:
    report = await run_live(LiveParams(chargers=6, drivers=12, duration_s=90 * 60, seed=3, speed=900))
    failed = [r for r in report.invariants if not r.ok]
    assert failed == [] and report.errors == []
    s = report.summary
    assert s["sessions"] > 0 and s["energy_wh"] > 0
    assert s["captured_pence"] == s["host_payouts_pence"] + s["platform_fees_pence"] > 0
    assert sum(s["driver_outcomes"].values()) == 12
    assert sum(s["no_charger_because"].values()) == s["driver_outcomes"].get("no_charger", 0)


async def test_the_time_held_is_what_the_run_waited_not_what_came_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Once the run is over its clock is no longer kept up and stands still: a slow summary (two
    # real seconds here) is not time the run waited for a busy machine.
    # Compared with what the clock had held when the run ended, so a busy machine's own holds
    # during the run do not decide it.
    after_s = 2.0
    held_at_end: list[float] = []

    def slow_summarise(app: Any, *args: Any, **kw: Any) -> Any:
        held_at_end.append(app.clock.held_s)
        time.sleep(after_s)
        return summarise(app, *args, **kw)

    monkeypatch.setattr("simulators.live.summarise", slow_summarise)
    report = await run_live(LiveParams(chargers=1, drivers=1, duration_s=10 * 60, seed=3, speed=600))
    assert report.errors == []
    assert len(held_at_end) == 1
    assert report.clock_held_s <= held_at_end[0]  # without: the summary's two seconds on top


async def test_a_run_cut_short_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    # A driver that never finishes (as one waiting on a backend still restarting when time runs
    # out): the run ends at its budget, and its report must not pass for a complete one.
    async def never_done(*_args: Any) -> str:
        await asyncio.Event().wait()
        return "never"

    monkeypatch.setattr("simulators.live.run_driver", never_done)
    monkeypatch.setattr("simulators.live.OVERRUN_MARGIN_S", 0.0)
    report = await run_live(LiveParams(chargers=1, drivers=1, duration_s=10 * 60, seed=3, speed=600))
    assert report.errors == ["the run overran its time: 1 driver(s) cut short"]


async def test_a_run_starts_at_its_start_however_long_its_setup_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Building and seeding the backend takes real seconds (many on a loaded machine): the run's
    # window must begin at its start time, not that many scaled seconds later.
    from simulators import live as live_module

    backend = live_module._backend
    seen: list[float] = []

    def slow_setup_then_backend(app: Any, params: LiveParams, clock: Any, *args: Any) -> Any:
        time.sleep(0.5)  # a slow seed, as a loaded machine makes it
        seen.append((clock.now() - params.start).total_seconds())
        return backend(app, params, clock, *args)

    monkeypatch.setattr("simulators.live._backend", slow_setup_then_backend)
    report = await run_live(LiveParams(chargers=1, drivers=1, duration_s=10 * 60, seed=3, speed=600))
    assert report.errors == []
    assert seen == [0.0]
