"""Clocks: the only source of "now". System for production, manual for tests, scaled for live sims."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def real_seconds(self, simulated: float) -> float:
        """How long to really wait for `simulated` seconds of this clock to pass."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def real_seconds(self, simulated: float) -> float:
        return simulated


class ManualClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("clock start must be timezone-aware")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now

    def real_seconds(self, simulated: float) -> float:
        return 0.0


class ScaledClock:
    """Simulated time running `factor` times faster than the monotonic clock, from a fixed start.

    A simulation that runs its own backend keeps the clock on a leash (`keep_up`): time runs only a
    little past the last moment the simulation's event loop got to run, so a loaded machine slows the
    simulation down instead of letting simulated time race past work that could not run.
    `paused`: time stands at `start` until the first `keep_up`, so a run's setup (building and
    seeding its backend, seconds on a loaded machine) is no simulated time, nor time held.
    """

    def __init__(
        self,
        start: datetime,
        factor: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        paused: bool = False,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("clock start must be timezone-aware")
        if factor <= 0:
            raise ValueError("clock factor must be positive")
        self.start = start.astimezone(UTC)
        self.factor = factor
        self._monotonic = monotonic
        # (monotonic origin, monotonic instant time stops at or None): one tuple, so a thread reading
        # the clock never sees one updated without the other.
        origin = monotonic()
        self._state: tuple[float, float | None] = (origin, origin if paused else None)
        self._held_s = 0.0  # real seconds simulated time stood still, up to the last `keep_up`
        self._paused = paused  # not yet started: the first `keep_up` starts time, nothing held

    def now(self) -> datetime:
        t0, stops_at = self._state
        real = self._monotonic()
        if stops_at is not None:
            real = min(real, stops_at)
        return self.start + timedelta(seconds=(real - t0) * self.factor)

    def real_seconds(self, simulated: float) -> float:
        return simulated / self.factor

    @property
    def held_s(self) -> float:
        """Real seconds simulated time has stood still, waiting for the process, counting a stop
        still going on: a run's budget grows with it while it lasts, not only once it has ended."""
        _, stops_at = self._state
        ongoing = 0.0 if stops_at is None or self._paused else max(0.0, self._monotonic() - stops_at)
        return self._held_s + ongoing

    def keep_up(self, slack_s: float) -> None:
        """The caller got its turn to run: time may go on for `slack_s` real seconds more. Whatever
        real time passed since time stopped (the caller got no turn) is taken back, so simulated time
        resumes from where it stood rather than jumping."""
        t0, stops_at = self._state
        real = self._monotonic()
        if stops_at is not None and real > stops_at:
            t0 += real - stops_at
            if not self._paused:
                self._held_s += real - stops_at
        self._paused = False
        self._state = (t0, real + slack_s)
