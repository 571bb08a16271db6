"""Rate-limit buckets in Redis: the Lua bucket agrees with the domain's token bucket step by step, and
two server processes spend from the same bucket. On fakeredis here; on a real Redis in
tests/integration/test_cluster_redis.py."""

from __future__ import annotations

from datetime import timedelta

import fakeredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.exceptions import ConnectionError as RedisConnectionError

from chargeshare.adapters.redis_rate_limits import RedisBuckets, micros
from chargeshare.domain.errors import RateLimited
from chargeshare.domain.rate_limit import Bucket, Limit, take
from chargeshare.services.clock import ManualClock
from chargeshare.services.rate_limits import RateLimiter
from tests.conftest import T0, examples

NS = "chargeshare:test"


@settings(max_examples=examples(100), deadline=None)
@given(
    burst=st.integers(1, 20),
    per_minute=st.integers(1, 600),
    steps_ms=st.lists(st.integers(-5_000, 30_000), min_size=1, max_size=40),
)
def test_the_lua_bucket_takes_as_the_domain_does(burst: int, per_minute: int, steps_ms: list[int]) -> None:
    buckets = RedisBuckets(fakeredis.FakeRedis(), NS)
    limit = Limit(burst, per_minute)
    bucket: Bucket | None = None
    now = T0
    for step in steps_ms:
        now += timedelta(milliseconds=step)  # the clock may step back: that refills nothing
        bucket, want = take(limit, bucket, now)
        got = buckets.take("login", "account:1", limit, now)
        assert (got > 0) == (want > 0)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-6)


def test_two_processes_spend_from_one_bucket() -> None:
    server = fakeredis.FakeServer()
    clock = ManualClock(T0)
    a = RateLimiter(clock, RedisBuckets(fakeredis.FakeRedis(server=server), NS))
    b = RateLimiter(clock, RedisBuckets(fakeredis.FakeRedis(server=server), NS))
    limit = Limit(burst=5, per_minute=5)
    for limiter in (a, b, a, b, a):
        limiter.check("login", "account:7", limit)
    with pytest.raises(RateLimited) as refused:
        b.check("login", "account:7", limit)
    assert refused.value.retry_after_s == pytest.approx(12.0)  # one token back in 60 s / 5
    a.check("login", "account:8", limit)  # another key, its own bucket
    clock.advance(12)
    b.check("login", "account:7", limit)


def test_without_redis_each_process_counts_alone() -> None:
    class Down:
        def register_script(self, _script: str) -> object:
            def run(**_kw: object) -> object:
                raise RedisConnectionError("Redis away")

            return run

    clock = ManualClock(T0)
    limiter = RateLimiter(clock, RedisBuckets(Down(), NS))
    limit = Limit(burst=2, per_minute=1)
    limiter.check("login", "k", limit)
    limiter.check("login", "k", limit)
    with pytest.raises(RateLimited):
        limiter.check("login", "k", limit)


def test_times_are_microseconds_since_the_epoch() -> None:
    assert micros(T0 + timedelta(microseconds=3)) - micros(T0) == 3
    assert micros(T0) == int(T0.timestamp()) * 1_000_000
