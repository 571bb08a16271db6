"""Two processes recording a refusal of one session's command at once, on PostgreSQL (READ
COMMITTED, real threads): both refusals count, and the retry time is the one for that count; and a
refusal committing while the charger's taking of the command clears the records."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.command_backoff import Backoff, OwedKind, Refusals
from chargeshare.services.clock import ManualClock
from chargeshare.services.owed_commands import record_refusal
from chargeshare.services.smart_charging import SmartChargingService
from chargeshare.services.v2g import V2gService
from tests.integration.pausing import PausesAfter, PausesBeforeCommit
from tests.integration.test_kyc_payout_race import waiting_on_a_lock
from tests.services.test_owed_back_off import driver, refusal_notices, v2g_session

pytestmark = pytest.mark.postgres

T = TypeVar("T")


def second_while_first_uncommitted(
    store: PausesBeforeCommit | PausesAfter,
    postgres_url: str,
    first: Callable[[], T],
    second: Callable[[], T],
) -> tuple[T, T]:
    """Run `first` in a thread `store` holds (before its commit, or after a call), then `second`
    in another until it waits on a lock (or is done); then let the first go on. What each returned."""
    held: list[threading.Thread] = []
    store.paused_thread = lambda: threading.current_thread() in held
    results: dict[str, T] = {}
    one = threading.Thread(target=lambda: results.setdefault("first", first()))
    held.append(one)
    one.start()
    assert store.reached.wait(30), "the first never got to its commit"
    done = threading.Event()

    def running_second() -> None:
        results["second"] = second()
        done.set()

    two = threading.Thread(target=running_second)
    two.start()
    blocked = waiting_on_a_lock(postgres_url)
    for _ in range(3_000):
        if done.wait(0.01) or blocked():
            break
    else:
        pytest.fail("the second neither finished nor waited on a lock")
    store.go.set()
    one.join(30)
    two.join(30)
    assert not one.is_alive() and not two.is_alive()
    return results["first"], results["second"]


@pytest.mark.parametrize("refused_before", [0, 3])
def test_two_refusals_recorded_at_once_both_count(
    pg_app: App, clock: ManualClock, postgres_url: str, refused_before: int
) -> None:
    _, _, session = v2g_session(pg_app, clock)
    backoff = Backoff()
    for _ in range(refused_before):
        record_refusal(pg_app.store, backoff, OwedKind.EXPORT, session, clock.now())
    now = clock.now()
    store = PausesBeforeCommit(pg_app.store, lambda: False)

    def refusing() -> Refusals | None:
        return record_refusal(store, backoff, OwedKind.EXPORT, session, now)

    first, second = second_while_first_uncommitted(store, postgres_url, refusing, refusing)
    count = refused_before + 2
    expected = Refusals(count, now, now + timedelta(seconds=backoff.delay_s(count)))
    assert (first, second) == (backoff.after(count - 1, now), expected)
    with pg_app.store.reading() as tx:
        assert tx.refusals.of(OwedKind.EXPORT, [session]) == {session: expected}


@pytest.mark.parametrize("kind", list(OwedKind))
@pytest.mark.parametrize("taken_first", [False, True], ids=["refusal-first", "taking-first"])
def test_a_refusal_and_the_chargers_taking_at_once_leave_no_refusal(
    pg_app: App, clock: ManualClock, postgres_url: str, kind: OwedKind, taken_first: bool
) -> None:
    """A refusal of an earlier send committing while the charger's taking of a later one clears
    the records: they take turns on the command's row, so either the clear sees the refusal and
    removes it, or the refusal sees the command taken and records nothing. Never a refusal left
    to delay the session's next command."""
    dee, booking, session = v2g_session(pg_app, clock)
    pg_app.smart.override(driver(dee), booking)
    backoff = Backoff()
    store = PausesBeforeCommit(pg_app.store, lambda: False)
    service = SmartChargingService(store, pg_app.bus, clock) if kind is OwedKind.OVERRIDE else None
    v2g = V2gService(store, pg_app.bus, clock) if kind is OwedKind.EXPORT else None

    def refusing() -> object:
        return record_refusal(store, backoff, kind, session, clock.now())

    def taking() -> object:
        if v2g is not None:
            v2g.export_taken(session)
        else:
            assert service is not None
            service.override_taken(session)
        return "taken"

    first, second = (taking, refusing) if taken_first else (refusing, taking)
    results = second_while_first_uncommitted(store, postgres_url, first, second)
    if taken_first:
        assert results[1] is None  # seen taken: nothing recorded
    with pg_app.store.reading() as tx:
        assert tx.refusals.of(kind, [session]) == {}


@pytest.mark.parametrize("limit", [8, 4])
def test_two_refusals_at_once_past_the_limit_tell_the_host_once(
    pg_app: App, clock: ManualClock, postgres_url: str, limit: int
) -> None:
    # The first gives the session up (at the limit, or past one lowered since the count began);
    # the second waits on its row and finds it given up already.
    _, _, session = v2g_session(pg_app, clock)
    for _ in range(5 if limit < 8 else 7):
        record_refusal(pg_app.store, Backoff(), OwedKind.EXPORT, session, clock.now())
    backoff = Backoff(limit=limit)
    store = PausesBeforeCommit(pg_app.store, lambda: False)

    def refusing() -> Refusals | None:
        return record_refusal(store, backoff, OwedKind.EXPORT, session, clock.now())

    first, second = second_while_first_uncommitted(store, postgres_url, refusing, refusing)
    assert first is not None and second is not None and first.given_up and second.given_up
    assert len(refusal_notices(pg_app)) == 1
