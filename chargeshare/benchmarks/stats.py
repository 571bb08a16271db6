"""Small statistics for latency samples (nanoseconds in, milliseconds out)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], pct: float) -> float:
    """The `pct`-th percentile (0-100), interpolating linearly between the two closest ranks."""
    if not samples:
        raise ValueError("no samples")
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be between 0 and 100, got {pct}")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * pct / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


@dataclass(frozen=True)
class Latency:
    """p50 and p99 of one series of timings, in milliseconds."""

    n: int
    p50_ms: float
    p99_ms: float

    @classmethod
    def of_ns(cls, samples_ns: Sequence[int]) -> Latency:
        return cls(
            n=len(samples_ns),
            p50_ms=percentile(samples_ns, 50) / 1e6,
            p99_ms=percentile(samples_ns, 99) / 1e6,
        )


def ratio(ours: float, baseline: float) -> float:
    """ours / baseline; infinite when the baseline took no measurable time."""
    return ours / baseline if baseline > 0 else math.inf
