"""A start replayed from a charger's offline queue racing a newer report of its connector free, on
PostgreSQL (READ COMMITTED, real threads), as when the charger reconnects to another process while
the first still applies its start. One after the other, either way round, the session is freed
(the free report is newer than the start); at once it must be too."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from chargeshare.bootstrap import App
from chargeshare.domain.charger import ConnectorStatus
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from tests.conftest import add_charger
from tests.integration.pausing import PausesAfter

pytestmark = pytest.mark.postgres


def pauses_after_finding_the_booking(inner: Any, thread: Callable[[], bool]) -> PausesAfter:
    """The store, paused in the chosen thread right after `bookings.for_start`."""
    return PausesAfter(inner, thread, "bookings", "for_start")


def test_a_replayed_start_racing_a_newer_free_report_is_freed(pg_app: App, clock: ManualClock) -> None:
    charger = add_charger(pg_app, price=40)
    driver = pg_app.marketplace.add_driver("D", "TAG1").driver_id
    pg_app.bookings.book(BookRequest(driver, charger, 1, 120, 20_000))
    clock.advance(60)
    began = clock.now()
    pg_app.charging.status("CP1", 1, ConnectorStatus.CHARGING, began)
    clock.advance(20 * 60)  # the charger away meanwhile; the car charged and left
    starter: list[threading.Thread] = []
    store = pauses_after_finding_the_booking(pg_app.store, lambda: threading.current_thread() in starter)
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
