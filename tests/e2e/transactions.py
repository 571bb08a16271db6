"""The 2.x transaction tests' shared steps (OCPP 2.0.1 in test_ocpp201_transactions.py, 2.1 in
test_ocpp21.py): a booking to charge under, what the store holds afterwards, and the offline replay
that both versions must count once."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from chargeshare.bootstrap import App
from chargeshare.domain.ledger import EntryKind
from chargeshare.services.booking import BookRequest
from chargeshare.services.invariants import check_store
from chargeshare.services.records import BookingRecord, SessionRecord
from tests.conftest import add_charger
from tests.e2e.conftest import Served
from tests.waiting import settled


def book(app: App, cp_id: str, tag: str, *, price: int = 40, max_wh: int = 10_000) -> BookingRecord:
    """An hour's booking from now on a new charger `cp_id`, by a new driver whose tag is `tag`."""
    charger_id = add_charger(app, cp_id, price=price)
    driver = app.marketplace.add_driver(f"driver {tag}", tag)
    return app.bookings.book(BookRequest(driver.driver_id, charger_id, 1, 60, max_wh))


def sessions(app: App) -> list[SessionRecord]:
    with app.store.transaction() as tx:
        return list(tx.sessions.all())


def captures(app: App, booking_id: int) -> list[int]:
    with app.store.transaction() as tx:
        return [e.amount for e in tx.ledger.entries(booking_id) if e.kind is EntryKind.CAPTURE]


def assert_invariants(app: App) -> None:
    failing = [r for r in check_store(app.store, app.config.rules, now=app.clock.now()) if not r.ok]
    assert not failing, failing


async def offline_queue_replayed_twice_counts_once(
    served: Served,
    connect: Callable[[str, str], AbstractAsyncContextManager[Any]],
    boot: Callable[[Any], Any],
    event: Callable[..., Any],
    cp_id: str,
) -> None:
    """A charger that lost our answers replays its whole offline queue, with the old timestamps,
    twice: one session, at the queue's own times, billed once. `connect`, `boot` and `event` are the
    version's library charge point, its boot and its TransactionEvent."""
    app = served.app
    tag = f"TAG-{cp_id}"
    booking = book(app, cp_id, tag, price=30)
    then = datetime.now(UTC) - timedelta(minutes=3)

    def at(minutes: int) -> str:
        return (then + timedelta(minutes=minutes)).isoformat()

    queue = [
        event("Started", 0, "Q1", wh=1_000, id_tag=tag, evse=1, timestamp=at(0), offline=True),
        event("Updated", 1, "Q1", wh=2_500, timestamp=at(1), offline=True),
        event("Updated", 2, "Q1", wh=3_000, timestamp=at(2), offline=True),
        event("Ended", 3, "Q1", wh=4_000, timestamp=at(3), offline=True, trigger="StopAuthorized"),
    ]
    async with connect(served.ws, cp_id) as cp:
        await boot(cp)
        for _ in range(2):
            for queued in queue:
                await cp.call(queued)
    (session,) = sessions(app)
    assert session.billed_wh == 3_000 and session.started_at == datetime.fromisoformat(at(0))
    assert session.stopped_at == datetime.fromisoformat(at(3))
    await settled(app)
    assert captures(app, booking.booking_id) == [90]  # 3.000 kWh x 30p
    assert_invariants(app)
