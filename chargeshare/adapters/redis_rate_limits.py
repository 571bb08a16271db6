"""Rate-limit buckets in Redis, shared by every server process on the same database: one token bucket
per key, spent by a Lua script (read, refill, spend and write happen atomically in Redis).

The arithmetic is `domain.rate_limit.take`'s, on times the caller supplies from the injected clock (in
microseconds since the epoch), so a clock running backwards refills nothing here either. A bucket's
key expires once it would have refilled completely on a clock keeping real time: then it would be full
anyway. If Redis cannot be asked, the process's own buckets stand in (a limit per process, as without
Redis) rather than refusing, or letting through, everyone.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError

from chargeshare.domain.rate_limit import Limit
from chargeshare.services.rate_limits import LocalBuckets

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# KEYS[1]: the bucket (a hash of tokens and the time they were counted). ARGV: now (µs), burst, per
# minute. Returns the wait in µs until a token is back, "0" when one was spent.
TAKE_SCRIPT = """
local now, burst, rate = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local held = redis.call('hmget', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(held[1]), tonumber(held[2])
if not tokens or not at then
  tokens, at = burst, now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 60000000)
if at < now then at = now end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) * 60000000 / rate
end
redis.call('hset', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', string.format('%.17g', at))
redis.call('pexpire', KEYS[1], math.ceil(burst * 60000 / rate) + 1000)
return string.format('%.17g', wait)
"""


def micros(at: datetime) -> int:
    delta = at - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class RedisBuckets:
    def __init__(self, client: Any, namespace: str) -> None:
        self.client, self.prefix = client, f"{namespace}:rate:"
        self._take = client.register_script(TAKE_SCRIPT)
        self._fallback = LocalBuckets()

    def take(self, kind: str, key: str, limit: Limit, now: datetime) -> float:
        try:
            wait_us = self._take(
                keys=[f"{self.prefix}{kind}:{key}"], args=[micros(now), limit.burst, limit.per_minute]
            )
        except (RedisError, OSError) as exc:
            log.warning("rate limits: Redis unavailable (%s); counting in this process", exc)
            return self._fallback.take(kind, key, limit, now)
        return float(wait_us) / 1_000_000
