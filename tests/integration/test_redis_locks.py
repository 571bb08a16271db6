"""The booking lock against a real Redis: lease, token-checked release, fencing."""

from __future__ import annotations

from typing import Any

import pytest

from chargeshare.adapters.redis_locks import RedisLocks
from chargeshare.bootstrap import App
from chargeshare.domain.errors import StaleFencingToken
from tests.conftest import T0, add_charger

pytestmark = pytest.mark.redis


def lapse(redis_client: Any, key: str) -> None:
    """The lease on `key` runs out, as its TTL would make it (without waiting for the TTL)."""
    assert redis_client.delete(f"chargeshare:lock:{key}") == 1


def test_lease_is_exclusive_and_fencing_tokens_rise(redis_client: Any) -> None:
    locks = RedisLocks(redis_client, wait_ms=20)
    first = locks.acquire("connector:1", ttl_ms=5_000)
    assert first is not None
    assert locks.acquire("connector:1", ttl_ms=5_000) is None  # held
    assert locks.release(first)
    second = locks.acquire("connector:1", ttl_ms=5_000)
    assert second is not None and second.fencing_token > first.fencing_token


def test_an_expired_holder_cannot_release_the_next_holders_lease(redis_client: Any) -> None:
    locks = RedisLocks(redis_client, wait_ms=0)
    paused = locks.acquire("k", ttl_ms=60_000)
    assert paused is not None
    lapse(redis_client, "k")  # the lease expires while its holder is "paused"
    current = locks.acquire("k", ttl_ms=5_000)
    assert current is not None
    assert not locks.release(paused)  # compare-and-delete: not ours any more
    assert redis_client.get("chargeshare:lock:k") == current.token.encode()


def test_a_stale_fencing_token_cannot_write_a_booking(redis_client: Any, app: App) -> None:
    add_charger(app)
    d = app.marketplace.add_driver("A", "A").driver_id
    locks = RedisLocks(redis_client, wait_ms=0)
    old = locks.acquire("connector:1", ttl_ms=60_000)
    lapse(redis_client, "connector:1")
    new = locks.acquire("connector:1", ttl_ms=5_000)
    assert old is not None and new is not None

    def write(token: int, hours: int) -> int:
        with app.store.transaction() as tx:
            return tx.bookings.add(
                driver_id=d,
                connector_id=1,
                starts_at=T0.replace(hour=hours),
                ends_at=T0.replace(hour=hours + 1),
                max_energy_wh=1000,
                price_per_kwh=30,
                hold_amount=33,
                created_at=T0,
                fencing_token=token,
            )

    write(new.fencing_token, 10)
    with pytest.raises(StaleFencingToken):
        write(old.fencing_token, 12)  # a different, free slot: refused only because the token is stale
