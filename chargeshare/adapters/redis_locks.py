"""Per-key leases in Redis: SET NX PX with a unique token, compare-and-delete release, INCR fencing.

The fencing token rises with every acquisition; the store refuses a booking write whose token is
lower than one already used for that connector, so a holder that paused past its lease cannot write.
Redis may forget the counter (a flush, a restart without persistence, the embedded fakeredis of a
restarted process) while the database keeps the highest token each connector has seen: a counter
that is missing is started from the database's (`fence_floor`), never from zero.

A Redis that fails or does not answer in its client's timeout gives no lease, as a held lock does:
the database decides alone, rather than every booking failing with it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger(__name__)

RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


# The next fencing token; -1 when the counter is missing and no floor was given to start it from.
FENCE_SCRIPT = """
if redis.call('exists', KEYS[1]) == 0 then
  if ARGV[1] == '' then return -1 end
  redis.call('set', KEYS[1], ARGV[1])
end
return redis.call('incr', KEYS[1])
"""


@dataclass(frozen=True)
class RedisLease:
    key: str
    token: str
    fencing_token: int


class RedisLocks:
    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "chargeshare:lock:",
        wait_ms: int = 200,
        fence_floor: Callable[[str], int] | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.wait_ms = wait_ms
        self.fence_floor = fence_floor  # the highest token already used for a key, from the database
        self._release = client.register_script(RELEASE_SCRIPT)
        self._next_fence = client.register_script(FENCE_SCRIPT)

    def acquire(self, key: str, ttl_ms: int) -> RedisLease | None:
        """Try for up to `wait_ms`; None when someone else still holds the lease, or Redis failed."""
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.wait_ms / 1000
        delay = 0.002
        while True:
            try:
                taken = self.client.set(self.prefix + key, token, nx=True, px=ttl_ms)
            except RedisError as exc:  # the lease may exist unanswered: it lapses with its TTL
                log.warning("booking lock unavailable, the database decides alone: %s", exc)
                return None
            if taken:
                return self._fenced(key, token)
            if time.monotonic() >= deadline:
                return None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _fenced(self, key: str, token: str) -> RedisLease | None:
        try:
            return RedisLease(key, token, self._fence(key))
        except RedisError as exc:
            log.warning("no fencing token, the database decides alone: %s", exc)
            self._quiet_release(RedisLease(key, token, 0))
            return None

    def _fence(self, key: str) -> int:
        counter = [self.prefix + key + ":fence"]
        fence = int(self._next_fence(keys=counter, args=[""]))
        if fence < 0:  # forgotten: start above every token the database has seen for this key
            floor = 0 if self.fence_floor is None else self.fence_floor(key)
            fence = int(self._next_fence(keys=counter, args=[str(floor)]))
        return fence

    def release(self, lease: RedisLease) -> bool:
        """Delete the lease only if it is still ours (it may have expired and been taken)."""
        return bool(self._release(keys=[self.prefix + lease.key], args=[lease.token]))

    def _quiet_release(self, lease: RedisLease) -> None:
        try:
            self.release(lease)
        except RedisError as exc:  # it lapses with its TTL
            log.warning("booking lock not released (it lapses by itself): %s", exc)

    @contextmanager
    def hold(self, key: str, ttl_ms: int) -> Iterator[RedisLease | None]:
        lease = self.acquire(key, ttl_ms)
        try:
            yield lease
        finally:
            if lease is not None:
                self._quiet_release(lease)


class NoLocks:
    """Locking switched off: the database constraint alone keeps bookings apart."""

    @contextmanager
    def hold(self, key: str, ttl_ms: int) -> Iterator[None]:
        yield None
