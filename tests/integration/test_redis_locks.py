"""The booking lock against a real Redis: lease, token-checked release, fencing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from chargeshare.adapters.redis_locks import RedisLocks
from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.errors import StaleFencingToken
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
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


def later_slot(driver: int, charger: int, hours: int) -> BookRequest:
    return BookRequest(driver, charger, 1, 60, 5_000, starts_at=T0 + timedelta(hours=hours))


def test_a_forgotten_fence_counter_starts_above_the_databases(redis_client: Any) -> None:
    """Redis flushed (or restarted without persistence) while the database kept each connector's
    fence: the next booking must not be refused as stale."""
    from tests.conftest import REDIS_URL

    app = build(
        Config(database_url="sqlite://", redis_url=REDIS_URL, password_hash="fast"), clock=ManualClock(T0)
    )
    try:
        charger = add_charger(app)
        driver = app.marketplace.add_driver("D", "D").driver_id
        app.bookings.book(BookRequest(driver, charger, 1, 60, 5_000))
        app.bookings.book(later_slot(driver, charger, 2))
        redis_client.flushdb()
        later = app.bookings.book(later_slot(driver, charger, 4))
        assert later.status is BookingStatus.CONFIRMED
    finally:
        app.close()


def test_the_embedded_lock_counter_survives_a_restart_of_the_process(tmp_path: Path) -> None:
    """The default (fakeredis) keeps its counter in the process; a restarted backend on the same
    database file must book again."""
    url = f"sqlite:///{tmp_path / 'cs.db'}"
    first = build(Config(database_url=url, password_hash="fast"), clock=ManualClock(T0))
    charger = add_charger(first)
    driver = first.marketplace.add_driver("D", "D").driver_id
    for hours in (0, 2, 4):
        first.bookings.book(later_slot(driver, charger, hours))
    first.close()
    again = build(Config(database_url=url, password_hash="fast"), clock=ManualClock(T0))
    try:
        booked = again.bookings.book(later_slot(driver, charger, 6))
        assert booked.status is BookingStatus.CONFIRMED
    finally:
        again.close()
