"""Clocks: the only source of "now". System for production, manual for tests, scaled for live sims."""

from __future__ import annotations

import time
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
    """Simulated time running `factor` times faster than the monotonic clock, from a fixed start."""

    def __init__(self, start: datetime, factor: float) -> None:
        if start.tzinfo is None:
            raise ValueError("clock start must be timezone-aware")
        if factor <= 0:
            raise ValueError("clock factor must be positive")
        self.start = start.astimezone(UTC)
        self.factor = factor
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._t0) * self.factor)

    def real_seconds(self, simulated: float) -> float:
        return simulated / self.factor
