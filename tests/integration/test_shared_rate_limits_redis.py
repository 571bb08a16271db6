"""The rate-limit Lua on a real Redis (its own Lua, not fakeredis's): the same answers as the domain's
token bucket, and one bucket for two clients, as for two server processes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import redis

from chargeshare.adapters.redis_rate_limits import RedisBuckets
from chargeshare.domain.rate_limit import Bucket, Limit, take
from tests.conftest import REDIS_URL, T0

pytestmark = pytest.mark.redis


def test_the_bucket_on_redis_takes_as_the_domain_does(redis_client: Any) -> None:
    other = redis.Redis.from_url(REDIS_URL)
    try:
        a, b = RedisBuckets(redis_client, "chargeshare:test"), RedisBuckets(other, "chargeshare:test")
        limit = Limit(burst=3, per_minute=7)
        bucket: Bucket | None = None
        now = T0
        for i, step_ms in enumerate([0, 1, 2, 3, 4_000, 8_571, 8_572, -30_000, 60_000, 1, 2, 3, 4]):
            now += timedelta(milliseconds=step_ms)
            bucket, want = take(limit, bucket, now)
            got = (a if i % 2 else b).take("login", "account:1", limit, now)
            assert got == pytest.approx(want, rel=1e-9, abs=1e-6), i
        assert 0 < redis_client.pttl("chargeshare:test:rate:login:account:1") <= 3 * 60_000 / 7 + 1_001
    finally:
        other.close()
