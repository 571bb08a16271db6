"""Per-key rate limits (login per account and per address, sign-up per address, bookings per account)
on the injected clock.

Kept in the process: each server process limits what reaches it. The buckets are small and bounded
by the number of keys seen; a full table is cleared rather than grown without bound.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

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


class RateLimiter:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._lock = threading.Lock()

    def check(self, kind: str, key: str, limit: Limit) -> None:
        """Spend one request of `kind` for `key`; raise RateLimited (with the wait) when none is left."""
        now = self.clock.now()
        with self._lock:
            if len(self._buckets) >= MAX_KEYS:
                self._buckets.clear()
            bucket, wait = take(limit, self._buckets.get((kind, key)), now)
            self._buckets[(kind, key)] = bucket
        if wait > 0:
            raise RateLimited(f"too many {kind} requests; try again in {wait:.0f} s", wait)
