"""The booking race's Redis side against a real Redis, and against one that does not answer: slot
claims in their three stages, the lock giving no lease when Redis is silent, and a booking made
answered as made even when reading it back fails."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from chargeshare.adapters.redis_slot_claims import RedisSlotClaims
from chargeshare.bootstrap import App, Config
from chargeshare.domain.booking import LIVE_STATES, BookingStatus
from chargeshare.domain.errors import BookingConflict
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from tests.conftest import REDIS_URL, SQLITE_MEMORY, add_charger, build_for_tests

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_app(redis_client: Any, clock: ManualClock) -> Iterator[App]:
    """SQLite in memory, with the slot claims and the lock in the real Redis."""
    a = build_for_tests(Config(database_url=SQLITE_MEMORY, redis_url=REDIS_URL), clock=clock)
    yield a
    a.close()


def driver(app: App, name: str) -> int:
    return app.marketplace.add_driver(name, name.upper()).driver_id


def book(app: App, driver_id: int, charger_id: int, key: str | None = None) -> Any:
    return app.bookings.book(BookRequest(driver_id, charger_id, 1, 60, 5_000), request_key=key)


def test_a_claimant_that_dies_after_claiming_blocks_the_slot_seconds_not_minutes(
    redis_app: App, clock: ManualClock
) -> None:
    charger = add_charger(redis_app)
    claims = redis_app.bookings.claims
    assert isinstance(claims, RedisSlotClaims)
    now = clock.now()
    # A request claimed the slot and its process died before writing the booking.
    assert claims.claim(charger, 1, now, now + timedelta(minutes=60), now) is not None
    with pytest.raises(BookingConflict):
        book(redis_app, driver(redis_app, "early"), charger)
    clock.advance(redis_app.config.rules.slot_claim_pending_s + 1)
    assert book(redis_app, driver(redis_app, "late"), charger).status is BookingStatus.CONFIRMED


def test_a_claim_holds_while_its_card_hold_is_placed_and_once_confirmed(
    redis_app: App, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    charger = add_charger(redis_app)
    claims = redis_app.bookings.claims
    rules = redis_app.config.rules
    racer_refused: list[bool] = []
    authorize = redis_app.settlement.authorize

    def slow_authorize(*args: Any) -> Any:
        # The provider takes well past the pending window: a racer is still refused at the claim.
        clock.advance(rules.hold_placement_timeout_s - 10)
        now = clock.now()
        racer_refused.append(claims.claim(charger, 1, now, now + timedelta(minutes=30), now) is None)
        return authorize(*args)

    monkeypatch.setattr(redis_app.settlement, "authorize", slow_authorize)
    assert book(redis_app, driver(redis_app, "a"), charger).status is BookingStatus.CONFIRMED
    assert racer_refused == [True]
    clock.advance(rules.slot_claim_held_s - 5)
    now = clock.now()
    assert claims.claim(charger, 1, now, now + timedelta(minutes=10), now) is None  # confirmed


@contextmanager
def silent_redis() -> Iterator[str]:
    """A Redis URL whose server takes connections (the kernel completes them on the backlog) and
    never answers a command."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    try:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    finally:
        server.close()


@pytest.fixture
def silent_app(clock: ManualClock) -> Iterator[App]:
    with silent_redis() as url:
        a = build_for_tests(
            Config(database_url=SQLITE_MEMORY, redis_url=url, redis_timeout_s=0.2), clock=clock
        )
        yield a
        a.close()


def test_a_silent_redis_gives_no_lease_and_the_database_decides(silent_app: App) -> None:
    charger = add_charger(silent_app)
    won = book(silent_app, driver(silent_app, "a"), charger)
    assert won.status is BookingStatus.CONFIRMED
    with pytest.raises(BookingConflict):  # refused by the database: no claim, no lease
        book(silent_app, driver(silent_app, "b"), charger)


def test_a_race_with_a_silent_redis_has_one_winner_and_no_errors(silent_app: App) -> None:
    charger = add_charger(silent_app)
    drivers = [driver(silent_app, f"d{i}") for i in range(8)]
    outcomes: Counter[str] = Counter()
    guard = threading.Lock()

    def attempt(driver_id: int) -> None:
        try:
            book(silent_app, driver_id, charger)
            result = "won"
        except BookingConflict:
            result = "lost"
        except Exception as exc:
            result = f"error {type(exc).__name__}"
        with guard:
            outcomes[result] += 1

    threads = [threading.Thread(target=attempt, args=(d,)) for d in drivers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert outcomes == Counter({"won": 1, "lost": 7})
    with silent_app.store.reading() as tx:
        assert sum(b.status in LIVE_STATES for b in tx.bookings.all()) == 1


def failing_reads_after_the_commit(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[int], threading.Event]:
    """Every read fails once the booking's hold is placed (the database went away after it
    committed), until the event returned is cleared; the list counts the reads that failed."""
    failed: list[int] = []
    made = threading.Event()
    finish, reading = app.settlement.finish_placement, app.store.reading

    def finish_then_fail(*args: Any) -> Any:
        record = finish(*args)
        made.set()
        return record

    def flaky_reading() -> AbstractContextManager[Any]:
        if made.is_set():
            failed.append(1)
            raise OperationalError("SELECT ...", {}, Exception("server closed the connection"))
        return reading()

    monkeypatch.setattr(app.settlement, "finish_placement", finish_then_fail)
    monkeypatch.setattr(app.store, "reading", flaky_reading)
    return failed, made


def test_a_booking_made_is_answered_as_made_when_its_read_back_fails(
    redis_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    charger = add_charger(redis_app)
    d = driver(redis_app, "a")
    failed, failing = failing_reads_after_the_commit(redis_app, monkeypatch)
    made = book(redis_app, d, charger, key="k-1")
    assert failed, "the read back was tried and failed"
    assert made.status is BookingStatus.CONFIRMED
    failing.clear()
    again = book(redis_app, d, charger, key="k-1")  # the client retries under its key
    assert again.booking_id == made.booking_id
    with redis_app.store.reading() as tx:
        assert [b.booking_id for b in tx.bookings.all()] == [made.booking_id]


def test_bench_race_counts_redis_commands_and_losers_stop_at_the_claim(
    redis_client: Any, tmp_path: Path
) -> None:
    from chargeshare.benchmarks.race import run_one

    result = run_one("sqlite", f"sqlite:///{tmp_path / 'race.db'}", True, REDIS_URL, 40, 4)
    assert (result.winners, result.conflicts, result.errors, result.holds) == (1, 39, 0, 1)
    # A loser is one claim script and no SQL; the winner's claim, lock, fence and release add a few.
    assert 1 <= result.redis_commands_per_attempt < 1.5
    assert result.statements_per_attempt < 1
