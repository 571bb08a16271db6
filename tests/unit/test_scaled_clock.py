"""The scaled clock on a leash: time stops when the simulation's loop gets no turn, and resumes from
where it stood, never jumping and never going back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chargeshare.services.clock import ScaledClock
from tests.fake_monotonic import FakeMonotonic

START = datetime(2026, 6, 1, 8, tzinfo=UTC)


def sim_s(clock: ScaledClock) -> float:
    return (clock.now() - START).total_seconds()


def test_without_a_leash_time_runs_at_its_factor(real: FakeMonotonic) -> None:
    clock = ScaledClock(START, 60, monotonic=real)
    real.t += 2
    assert sim_s(clock) == 120
    assert clock.real_seconds(120) == 2


def test_time_stops_when_the_loop_gets_no_turn_and_resumes_where_it_stood(real: FakeMonotonic) -> None:
    clock = ScaledClock(START, 100, monotonic=real)
    clock.keep_up(0.1)
    real.t += 0.05
    assert sim_s(clock) == pytest.approx(5)
    real.t += 3  # the loop starved for seconds: time stood at the slack's end meanwhile
    assert sim_s(clock) == pytest.approx(10)
    clock.keep_up(0.1)  # the loop runs again: on from 10 s, not from 305 s
    assert sim_s(clock) == pytest.approx(10)
    assert clock.held_s == pytest.approx(2.95)
    real.t += 0.02
    assert sim_s(clock) == pytest.approx(12)


def test_time_never_goes_back(real: FakeMonotonic) -> None:
    clock = ScaledClock(START, 300, monotonic=real)
    seen = [clock.now()]
    for step in (0.01, 0.5, 0.01, 0.2, 2.0, 0.03):
        clock.keep_up(0.1)
        real.t += step
        seen.append(clock.now())
        clock.keep_up(0.1)
        seen.append(clock.now())
    assert seen == sorted(seen)
    assert seen[-1] - seen[0] < timedelta(seconds=300 * sum((0.01, 0.5, 0.01, 0.2, 2.0, 0.03)))


def test_a_paused_clock_stands_at_its_start_until_first_kept_up(real: FakeMonotonic) -> None:
    """A run's setup (building and seeding its backend) is no simulated time, nor time held."""
    clock = ScaledClock(START, 300, monotonic=real, paused=True)
    real.t += 5
    assert sim_s(clock) == 0 and clock.held_s == 0
    clock.keep_up(0.1)
    real.t += 0.05
    assert sim_s(clock) == pytest.approx(15) and clock.held_s == 0
    real.t += 1  # from here on a stop is held time, as for any clock on a leash
    clock.keep_up(0.1)
    assert sim_s(clock) == pytest.approx(30) and clock.held_s == pytest.approx(0.95)
