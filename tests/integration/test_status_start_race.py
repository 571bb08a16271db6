"""A start replayed from a charger's offline queue racing a newer report of its connector free, on
PostgreSQL (READ COMMITTED, real threads), as when the charger reconnects to another process while
the first still applies its start. One after the other, either way round, the session is freed
(the free report is newer than the start); at once it must be too."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.charger import ConnectorStatus
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from tests.conftest import add_charger

pytestmark = pytest.mark.postgres


class PausesAfterFindingTheBooking:
    """The store, but one thread's unit of work stops right after it looks up the booking a start
    is for (the charger and its connectors read by then), until told to go on."""

    def __init__(self, inner: Any, thread: Callable[[], bool]) -> None:
        self.inner, self.paused_thread = inner, thread
        self.read, self.go = threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.inner.transaction() as tx:
            if self.paused_thread() and not self.read.is_set():
                bookings = tx.bookings
                for_start = bookings.for_start

                def find_then_wait(*args: Any, **kwargs: Any) -> Any:
                    found = for_start(*args, **kwargs)
                    if not self.read.is_set():
                        self.read.set()
                        assert self.go.wait(30), "never told to go on"
                    return found

                bookings.for_start = find_then_wait
            yield tx


def test_a_replayed_start_racing_a_newer_free_report_is_freed(pg_app: App, clock: ManualClock) -> None:
    charger = add_charger(pg_app, price=40)
    driver = pg_app.marketplace.add_driver("D", "TAG1").driver_id
    pg_app.bookings.book(BookRequest(driver, charger, 1, 120, 20_000))
    clock.advance(60)
    began = clock.now()
    pg_app.charging.status("CP1", 1, ConnectorStatus.CHARGING, began)
    clock.advance(20 * 60)  # the charger away meanwhile; the car charged and left
    starter: list[threading.Thread] = []
    store = PausesAfterFindingTheBooking(pg_app.store, lambda: threading.current_thread() in starter)
    pg_app.charging.store = store
    started: list[int] = []
    start = threading.Thread(
        target=lambda: started.append(pg_app.charging.start("CP1", 1, "TAG1", 1_000, began).transaction_id)
    )
    starter.append(start)
    start.start()
    assert store.read.wait(30), "the start never looked its booking up"
    pg_app.charging.status("CP1", 1, ConnectorStatus.AVAILABLE, clock.now() - timedelta(seconds=5))
    store.go.set()
    start.join(30)
    assert not start.is_alive() and len(started) == 1
    with pg_app.store.reading() as tx:
        session = tx.sessions.get(started[0])
    assert session is not None
    assert session.freed_at is not None  # its stop awaited, else closed as lost a grace from now
