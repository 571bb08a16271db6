"""A booked driver charges while the charger is offline; the charger stays away past the booking's
end, so the sweep expires the booking as a no-show (no fee: nobody could tell), and only then does
the charger come back and replay the start. The start, stamped within the booking by the booked
driver's token, is the driver's: billed at the booking's price, once, never refused and never a
walk-in. The expired booking's own ending stands (its hold released, or its fee taken), so the
energy is charged afresh at the end under a booking of its own. On the in-memory fake, through the
OCPP 1.6 and 2.0.1 handlers."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from chargeshare.adapters.memory_store import MemoryBookings
from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App
from chargeshare.domain.booking import BookingStatus, is_walk_in
from chargeshare.domain.ledger import EntryKind
from chargeshare.ocpp import csms_v16, csms_v201
from chargeshare.ocpp.timestamps import format_ts
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.invariants import check_store
from chargeshare.services.records import BookingRecord
from tests.conftest import add_charger
from tests.services.offline_events import offline_event

HOUR = timedelta(hours=1)
PRICE = 30  # add_charger's price, pence per kWh
WALK_IN_PRICE = 45


def settle(app: App) -> None:
    while app.settlement.process_due().done:
        pass


def failing(app: App) -> set[str]:
    return {r.name for r in check_store(app.store, app.config.rules, now=app.clock.now()) if not r.ok}


def bookings_of(app: App, driver: int) -> list[BookingRecord]:
    with app.store.reading() as tx:
        return sorted((b for b in tx.bookings.all() if b.driver_id == driver), key=lambda b: b.booking_id)


def captured(app: App, booking_id: int) -> int:
    with app.store.reading() as tx:
        return sum(e.amount for e in tx.ledger.entries(booking_id) if e.kind is EntryKind.CAPTURE)


def replay16(app: App, tag: str, began: datetime, wh: int) -> dict[str, Any]:
    """The 1.6 charger's queue: StartTransaction, then (if accepted) StopTransaction 50 minutes on."""
    table = csms_v16.handlers(app.charging, "CP1", app.reports)
    start = {"connectorId": 1, "idTag": tag, "meterStart": 0, "timestamp": format_ts(began)}
    started = table["StartTransaction"](start)
    assert table["StartTransaction"](start) == started  # sent again: the same answer
    if started["idTagInfo"]["status"] == "Accepted":
        stop = {
            "transactionId": started["transactionId"],
            "meterStop": wh,
            "timestamp": format_ts(began + timedelta(minutes=50)),
        }
        table["StopTransaction"](stop)
        table["StopTransaction"](stop)
    return started


def replay201(app: App, tag: str, began: datetime, wh: int) -> dict[str, Any]:
    """The 2.0.1 charger's queue: TransactionEvent Started (with the token), Ended 50 minutes on."""
    table = csms_v201.handlers(app.charging, "CP1", app.reports)
    started = offline_event(table, "Started", 0, began, 0, idToken={"idToken": tag, "type": "ISO14443"})
    if started["idTokenInfo"]["status"] == "Accepted":
        offline_event(table, "Ended", 1, began + timedelta(minutes=50), wh)
        offline_event(table, "Ended", 1, began + timedelta(minutes=50), wh)  # sent again: nothing more
    return started


REPLAYS = {"1.6": replay16, "2.0.1": replay201}


def expired_while_away(app: App, clock: ManualClock, *, walk_in: bool) -> tuple[int, BookingRecord]:
    """Ann's hour on CP1 begins in an hour; the charger goes away before it and is still away when
    the hour is over, so the sweep expires her booking (no fee) and releases her hold. Returns Ann
    and her expired booking."""
    charger = add_charger(app)
    if walk_in:
        app.tokens.set_walk_in(charger, WALK_IN_PRICE)
    ann = app.marketplace.add_driver("Ann", "ANN-TAG").driver_id
    app.tokens.add(ann, "CARD-1")
    booked = app.bookings.book(BookRequest(ann, charger, 1, 60, 10_000, starts_at=clock.now() + HOUR))
    app.charging.disconnected("CP1")
    clock.advance(2 * 3600 + 10 * 60)  # the hour is over, the charger still away
    assert app.bookings.expire_no_shows() == [booked.booking_id]
    settle(app)
    (expired,) = bookings_of(app, ann)
    assert (expired.status, expired.fee) == (BookingStatus.EXPIRED, 0)
    app.charging.heartbeat("CP1")  # back
    return ann, expired


@pytest.mark.parametrize("version", REPLAYS)
@pytest.mark.parametrize("walk_in", [False, True], ids=["bookings-only", "walk-in-too"])
def test_a_start_replayed_after_the_booking_expired_is_billed_on_the_booking(
    app: App, clock: ManualClock, version: str, walk_in: bool
) -> None:
    ann, expired = expired_while_away(app, clock, walk_in=walk_in)
    began = expired.starts_at + timedelta(minutes=5)
    started = REPLAYS[version](app, "CARD-1", began, 5_000)
    info = started["idTagInfo"] if version == "1.6" else started["idTokenInfo"]
    assert info["status"] == "Accepted"
    settle(app)
    first, late = bookings_of(app, ann)
    assert (first.booking_id, first.status, first.fee) == (expired.booking_id, BookingStatus.EXPIRED, 0)
    # On the booking's terms (its price, within its time), not the host's walk-in price.
    assert late.status is BookingStatus.COMPLETED and late.price_per_kwh == PRICE
    assert (late.starts_at, late.ends_at) == (began, began + timedelta(minutes=50))
    assert late.max_energy_wh == expired.max_energy_wh and is_walk_in(late.hold_amount)
    with app.store.reading() as tx:
        session = tx.sessions.for_booking(late.booking_id)
    assert session is not None and session.billed_wh == 5_000
    assert (captured(app, first.booking_id), captured(app, late.booking_id)) == (0, 150)  # once, at 30p
    gateway = app.gateway
    assert isinstance(gateway, SimulatedGateway)
    assert gateway.open_authorisations() == {}  # the first hold released, the late one captured
    assert failing(app) == set()


def test_a_start_stamped_after_the_expired_booking_is_not_its_session(app: App, clock: ManualClock) -> None:
    """Only a start within the booking's own time belongs to it: one after its end is what it
    would have been without the booking (here: refused, the host takes bookings only)."""
    _, expired = expired_while_away(app, clock, walk_in=False)
    started = replay16(app, "CARD-1", expired.ends_at + timedelta(minutes=1), 5_000)
    assert started["idTagInfo"]["status"] == "Blocked"
    assert failing(app) == set()


def test_another_drivers_start_in_the_expired_booking_is_not_billed_on_it(
    app: App, clock: ManualClock
) -> None:
    _, expired = expired_while_away(app, clock, walk_in=False)
    app.marketplace.add_driver("Bob", "BOB-TAG")
    started = replay16(app, "BOB-TAG", expired.starts_at + timedelta(minutes=5), 5_000)
    assert started["idTagInfo"]["status"] == "Blocked"


def test_a_late_start_keeps_to_the_time_a_booking_made_since_leaves_free(
    app: App, clock: ManualClock
) -> None:
    """Bob booked the expired hour's second half after it expired; Ann's replayed start in its
    first half is still hers, billed once, and her late booking stops where Bob's begins."""
    ann, expired = expired_while_away(app, clock, walk_in=False)
    bob = app.marketplace.add_driver("Bob", "BOB-TAG").driver_id
    with app.store.transaction() as tx:  # as a booking made in the meantime would have
        bobs = tx.bookings.add(
            driver_id=bob,
            connector_id=expired.connector_id,
            starts_at=expired.starts_at + timedelta(minutes=30),
            ends_at=expired.ends_at,
            max_energy_wh=10_000,
            price_per_kwh=PRICE,
            hold_amount=0,
            created_at=clock.now(),
            fencing_token=None,
        )
        tx.bookings.update(bobs, BookingStatus.CONFIRMED, expected=BookingStatus.REQUESTED)
    table = csms_v16.handlers(app.charging, "CP1", app.reports)
    began = expired.starts_at + timedelta(minutes=5)
    started = table["StartTransaction"](
        {"connectorId": 1, "idTag": "CARD-1", "meterStart": 0, "timestamp": format_ts(began)}
    )
    assert started["idTagInfo"] == {"status": "Accepted"}
    late = bookings_of(app, ann)[-1]
    assert (late.starts_at, late.ends_at) == (began, expired.starts_at + timedelta(minutes=30))


def test_a_no_show_fee_taken_stands_and_the_late_charge_is_billed_besides(
    app: App, clock: ManualClock
) -> None:
    """The charger was heard through the arrival grace, so Ann was a no-show and paid the fee; the
    start it kept (a minute after the grace) comes later. The fee was the policy's, the energy is
    billed besides, each once: the ledger's captures are the fee and the metered cost."""
    charger = add_charger(app)
    ann = app.marketplace.add_driver("Ann", "ANN-TAG").driver_id
    booked = app.bookings.book(BookRequest(ann, charger, 1, 60, 10_000, starts_at=clock.now() + HOUR))
    grace = app.config.rules.cancellation.no_show_grace_minutes
    clock.advance(3600 + (grace + 5) * 60)
    assert app.bookings.expire_no_shows() == [booked.booking_id]
    settle(app)
    fee = app.config.rules.cancellation.no_show_fee
    started = replay16(app, "ANN-TAG", booked.starts_at + timedelta(minutes=grace + 1), 5_000)
    assert started["idTagInfo"]["status"] == "Accepted"
    settle(app)
    first, late = bookings_of(app, ann)
    assert (first.status, first.fee, late.status) == (BookingStatus.EXPIRED, fee, BookingStatus.COMPLETED)
    assert (captured(app, first.booking_id), captured(app, late.booking_id)) == (fee, 150)
    assert failing(app) == set()


def test_a_replayed_start_racing_the_sweep_that_expires_its_booking_is_still_billed(
    app: App, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the sweep in another process may expire the booking between the start reading
    it confirmed and writing it active: the write then finds it changed, and the replayed start is
    billed as one that came after the expiry, not refused."""
    ann, expired = expired_while_away(app, clock, walk_in=False)
    stale = replace(expired, status=BookingStatus.CONFIRMED)  # as read before the sweep committed
    real = MemoryBookings.for_start  # the app fixture's store is the in-memory fake

    def read_before_the_sweep(
        self: Any, connector_id: int, driver_id: int, at: datetime, status: Any = None
    ) -> Any:
        if status in (None, BookingStatus.CONFIRMED):
            return stale
        return real(self, connector_id, driver_id, at, status)

    monkeypatch.setattr(MemoryBookings, "for_start", read_before_the_sweep)
    started = replay16(app, "CARD-1", expired.starts_at + timedelta(minutes=5), 5_000)
    monkeypatch.undo()
    assert started["idTagInfo"]["status"] == "Accepted"
    settle(app)
    first, late = bookings_of(app, ann)
    assert (first.status, late.status, late.price_per_kwh) == (
        BookingStatus.EXPIRED,
        BookingStatus.COMPLETED,
        PRICE,
    )
    assert captured(app, late.booking_id) == 150
    assert failing(app) == set()
