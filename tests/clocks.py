"""Clocks for tests that run a real server or charger but move time themselves."""

from __future__ import annotations

from chargeshare.services.clock import ManualClock


class HandClock(ManualClock):
    """Moved by hand; a periodic task's wait is an hour of real time, so none comes round on its own
    and the test runs (or awaits) each step it depends on."""

    def real_seconds(self, simulated: float) -> float:
        return 3_600.0
