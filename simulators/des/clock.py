"""The services' clock in a discrete-event run: SimPy's virtual seconds from a fixed UTC epoch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import simpy


class SimClock:
    def __init__(self, env: simpy.Environment, epoch: datetime) -> None:
        if epoch.tzinfo is None:
            raise ValueError("clock epoch must be timezone-aware")
        self.env = env
        self.epoch = epoch.astimezone(UTC)
        # The last instant asked for: a frame's handling asks the same virtual instant many times.
        self._at_s: float = 0.0
        self._at = self.epoch

    def now(self) -> datetime:
        at_s = self.env.now
        if at_s != self._at_s:
            self._at_s, self._at = at_s, self.epoch + timedelta(seconds=at_s)
        return self._at

    def real_seconds(self, simulated: float) -> float:
        """Nothing to wait for: virtual time jumps to the next event."""
        return 0.0
