"""Token buckets for rate limits: pure arithmetic on times the caller supplies."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Limit:
    """At most `burst` at once, refilled at `per_minute` a minute."""

    burst: int
    per_minute: int

    def __post_init__(self) -> None:
        if self.burst < 1 or self.per_minute < 1:
            raise ValueError("a rate limit needs a burst and a rate of at least 1")


@dataclass(frozen=True)
class Bucket:
    tokens: float
    at: datetime


def take(limit: Limit, bucket: Bucket | None, now: datetime) -> tuple[Bucket, float]:
    """Spend one token. Returns the new bucket and 0, or the unchanged bucket and the seconds to wait
    until a token is back (a clock running backwards refills nothing)."""
    if bucket is None:
        bucket = Bucket(float(limit.burst), now)
    elapsed = max(0.0, (now - bucket.at).total_seconds())
    tokens = min(float(limit.burst), bucket.tokens + elapsed * limit.per_minute / 60)
    if tokens >= 1:
        return Bucket(tokens - 1, max(now, bucket.at)), 0.0
    return Bucket(tokens, max(now, bucket.at)), (1 - tokens) * 60 / limit.per_minute


def retry_after_header(wait_s: float) -> str:
    """Whole seconds, rounded up, at least 1 (HTTP Retry-After)."""
    return str(max(1, math.ceil(wait_s)))
