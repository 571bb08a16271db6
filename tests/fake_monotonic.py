"""A monotonic clock tests move by hand, for clocks that take one (`ScaledClock`, the shared clock)."""

from __future__ import annotations


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t
