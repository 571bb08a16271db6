"""Per-key rate limits (login per account and per address, sign-up per address, bookings per account)
on the injected clock.

The buckets live in the process by default: each server process limits what reaches it. With Redis
configured they live there (adapters/redis_rate_limits.py), so a limit holds across every process
serving the same database. In the process they are small and bounded by the number of keys seen; a
full table is cleared rather than grown without bound.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from chargeshare.domain.errors import RateLimited
from chargeshare.domain.rate_limit import Bucket, Limit, take
from chargeshare.services.clock import Clock

MAX_KEYS = 100_000


@dataclass(frozen=True)
class ApiLimits:
    login_per_account: Limit = field(default_factory=lambda: Limit(burst=5, per_minute=5))
    login_per_address: Limit = field(default_factory=lambda: Limit(burst=100, per_minute=100))
    # Every sign-up costs a password hash. None: no limit, for simulations that sign a whole fleet of
    # drivers up from one address.
    signup_per_address: Limit | None = field(default_factory=lambda: Limit(burst=10, per_minute=10))
    booking_per_account: Limit = field(default_factory=lambda: Limit(burst=20, per_minute=20))
    # Each held quote is a row kept for the driver: as many as a driver comparing chargers asks for.
    held_quote_per_account: Limit = field(default_factory=lambda: Limit(burst=60, per_minute=60))


class Buckets(Protocol):
    def take(self, kind: str, key: str, limit: Limit, now: datetime) -> float:
        """Spend one token from the bucket of (`kind`, `key`); 0, or the seconds until one is back."""
        ...


class LocalBuckets:
    """The buckets in this process's memory."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._lock = threading.Lock()

    def take(self, kind: str, key: str, limit: Limit, now: datetime) -> float:
        with self._lock:
            if len(self._buckets) >= MAX_KEYS:
                self._buckets.clear()
            bucket, wait = take(limit, self._buckets.get((kind, key)), now)
            self._buckets[(kind, key)] = bucket
        return wait


class RateLimiter:
    def __init__(self, clock: Clock, buckets: Buckets | None = None) -> None:
        self.clock = clock
        self.buckets = buckets or LocalBuckets()

    def check(self, kind: str, key: str, limit: Limit) -> None:
        """Spend one request of `kind` for `key`; raise RateLimited (with the wait) when none is left."""
        wait = self.buckets.take(kind, key, limit, self.clock.now())
        if wait > 0:
            raise RateLimited(f"too many {kind} requests; try again in {wait:.0f} s", wait)
