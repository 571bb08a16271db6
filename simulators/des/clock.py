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

    def now(self) -> datetime:
        return self.epoch + timedelta(seconds=self.env.now)

    def real_seconds(self, simulated: float) -> float:
        """Nothing to wait for: virtual time jumps to the next event."""
        return 0.0
