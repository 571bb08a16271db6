"""A walk-in replayed from a charger's offline queue racing a booking of the same connector on
PostgreSQL: the walk-in reads the time bookings hold under the connector's lock, so a booking
committing in between cannot make it collide with the exclusion constraint and be refused."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from chargeshare.adapters.sql import bookings as sql_bookings
from chargeshare.bootstrap import App
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.errors import BookingConflict
from chargeshare.services.booking import BookRequest
from chargeshare.services.charging import AuthStatus
from chargeshare.services.clock import ManualClock
from chargeshare.services.invariants import check_store
from tests.conftest import add_charger
from tests.integration.test_boot_policy_race import WAIT_S
from tests.integration.test_boot_policy_race import rejection_waiting_or_done as done_or_waiting

pytestmark = pytest.mark.postgres


def test_a_booking_racing_a_replayed_walk_in_waits_and_the_walk_in_is_billed(
    pg_app: App, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    charger = add_charger(pg_app)
    ann = pg_app.marketplace.add_driver("Ann", "ANN-TAG").driver_id
    bob = pg_app.marketplace.add_driver("Bob", "BOB-TAG").driver_id
    pg_app.tokens.set_walk_in(charger, 50)
    began = clock.now()
    clock.advance(2 * 3_600)
    outcome: list[object] = []

    def book() -> None:
        try:
            request = BookRequest(bob, charger, 1, 60, 10_000, starts_at=clock.now() + timedelta(hours=1))
            outcome.append(pg_app.bookings.book(request))
        except Exception as exc:  # the test looks at it
            outcome.append(exc)

    booking = threading.Thread(target=book)
    read = sql_bookings.SqlBookings.held_periods

    def booking_mid_walk_in(
        self: Any, connector_id: int, since: datetime
    ) -> Sequence[tuple[datetime, datetime]]:
        # Bob's booking runs just after the walk-in has read the calendar, before it writes.
        periods = read(self, connector_id, since)
        if booking.ident is None:
            booking.start()
            done_or_waiting(pg_app, booking)  # on a lock the walk-in holds, or committed
        return periods

    monkeypatch.setattr(sql_bookings.SqlBookings, "held_periods", booking_mid_walk_in)
    started = pg_app.charging.start("CP1", 1, "ANN-TAG", 0, began)
    booking.join(WAIT_S)
    assert not booking.is_alive()
    assert started.status is AuthStatus.ACCEPTED  # never refused: it has charged already
    # Bob waited for the walk-in's unit of work, then found its time taken.
    assert len(outcome) == 1 and isinstance(outcome[0], BookingConflict), outcome
    pg_app.charging.stop("CP1", started.transaction_id, 2_000, began + timedelta(minutes=30))
    with pg_app.store.reading() as tx:
        (walk_in,) = [b for b in tx.bookings.all() if b.driver_id == ann]
    assert (walk_in.status, walk_in.starts_at) == (BookingStatus.COMPLETED, began)
    failing = [r.name for r in check_store(pg_app.store, pg_app.config.rules, now=clock.now()) if not r.ok]
    assert failing == []
