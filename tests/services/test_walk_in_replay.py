"""A charger that was offline replays its queue on reconnecting: a start stamped in the past, its
readings, its stop. A walk-in's start is then decided and booked at its own instant, never refused
for the calendar (it has charged already), and billed once at the host's walk-in price. On the
in-memory fake, through the OCPP 1.6 and 2.0.1 handlers."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.ledger import EntryKind
from chargeshare.ocpp import csms_v16, csms_v201
from chargeshare.ocpp.connection import Handler
from chargeshare.ocpp.timestamps import format_ts
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from chargeshare.services.invariants import check_store
from chargeshare.services.records import BookingRecord
from tests.conftest import add_charger
from tests.services.offline_events import offline_event

HOUR = timedelta(hours=1)
PRICE = 45  # the host's walk-in price, pence per kWh


def failing(app: App) -> set[str]:
    return {r.name for r in check_store(app.store, app.config.rules, now=app.clock.now()) if not r.ok}


@pytest.fixture
def world(app: App) -> tuple[int, int]:
    """CP1 (30p/kWh booked) taking walk-ins at 45p/kWh; Ann with her card CARD-1."""
    charger = add_charger(app)
    app.tokens.set_walk_in(charger, PRICE)
    ann = app.marketplace.add_driver("Ann", "ANN-TAG").driver_id
    app.tokens.add(ann, "CARD-1")
    return charger, ann


def bookings_of(app: App, driver: int) -> list[BookingRecord]:
    with app.store.reading() as tx:
        return [b for b in tx.bookings.all() if b.driver_id == driver]


def captured(app: App, booking_id: int) -> int:
    with app.store.reading() as tx:
        return sum(e.amount for e in tx.ledger.entries(booking_id) if e.kind is EntryKind.CAPTURE)


def replay16(
    table: dict[str, Handler], tag: str, start: tuple[int, datetime], stop: tuple[int, datetime]
) -> int:
    """A 1.6 charger's queue: StartTransaction, a reading, StopTransaction; its transaction id."""
    started = table["StartTransaction"](
        {"connectorId": 1, "idTag": tag, "meterStart": start[0], "timestamp": format_ts(start[1])}
    )
    assert started["idTagInfo"] == {"status": "Accepted"}, started
    tx_id = int(started["transactionId"])
    table["MeterValues"](
        {
            "connectorId": 1,
            "transactionId": tx_id,
            "meterValue": [{"timestamp": format_ts(stop[1]), "sampledValue": [{"value": str(stop[0])}]}],
        }
    )
    table["StopTransaction"]({"transactionId": tx_id, "meterStop": stop[0], "timestamp": format_ts(stop[1])})
    return tx_id


def test_a_replayed_walk_in_is_booked_from_its_own_start_and_billed_once(
    app: App, clock: ManualClock, world: tuple[int, int]
) -> None:
    _, ann = world
    table = csms_v16.handlers(app.charging, "CP1", app.reports)
    began = clock.now()
    clock.advance(3 * 3_600)  # offline meanwhile: all of it arrives now
    tx_id = replay16(table, "CARD-1", (1_000, began), (11_000, began + HOUR))
    # The whole queue again (its answers were lost): the same transaction, nothing new.
    assert replay16(table, "CARD-1", (1_000, began), (11_000, began + HOUR)) == tx_id
    (walk_in,) = bookings_of(app, ann)
    assert (walk_in.status, walk_in.price_per_kwh, walk_in.hold_amount) == (BookingStatus.COMPLETED, PRICE, 0)
    assert (walk_in.starts_at, walk_in.ends_at) == (began, began + HOUR)
    assert captured(app, walk_in.booking_id) == 450  # 10 kWh at 45p, once
    gateway = app.gateway
    assert isinstance(gateway, SimulatedGateway)
    assert [(h.amount, h.state) for h in gateway.holds.values()] == [(450, "captured")]
    assert failing(app) == set()


def test_a_replayed_walk_in_is_not_refused_for_a_booking_made_since(
    app: App, clock: ManualClock, world: tuple[int, int]
) -> None:
    """Bob booked the connector from half an hour after Ann's replay arrives: a walk-in starting now
    would be refused (its four hours overlap), but Ann's has charged already. Its booking keeps to
    the time before Bob's."""
    charger, ann = world
    bob = app.marketplace.add_driver("Bob", "BOB-TAG").driver_id
    table = csms_v16.handlers(app.charging, "CP1", app.reports)
    began = clock.now()
    clock.advance(2 * 3_600)
    bobs = app.bookings.book(BookRequest(bob, charger, 1, 60, 10_000, starts_at=clock.now() + HOUR / 2))
    assert app.charging.start("CP1", 1, "CARD-1", 0, clock.now()).status.value == "Blocked"  # live: refused
    started = table["StartTransaction"](
        {"connectorId": 1, "idTag": "CARD-1", "meterStart": 0, "timestamp": format_ts(began)}
    )
    assert started["idTagInfo"] == {"status": "Accepted"}
    (walk_in,) = bookings_of(app, ann)
    assert (walk_in.status, walk_in.starts_at, walk_in.ends_at) == (
        BookingStatus.ACTIVE,
        began,
        bobs.starts_at,
    )
    table["StopTransaction"](
        {"transactionId": started["transactionId"], "meterStop": 2_000, "timestamp": format_ts(began + HOUR)}
    )
    (walk_in,) = bookings_of(app, ann)
    assert (walk_in.status, walk_in.ends_at, captured(app, walk_in.booking_id)) == (
        BookingStatus.COMPLETED,
        began + HOUR,
        90,
    )
    clock.advance(3_600)
    started_bob = app.charging.start("CP1", 1, "BOB-TAG", 0, clock.now())
    assert started_bob.status.value == "Accepted"
    app.charging.stop("CP1", started_bob.transaction_id, 1_000, clock.now())
    assert failing(app) == set()


def test_a_replayed_walk_in_during_someone_elses_booking_is_still_billed(
    app: App, clock: ManualClock, world: tuple[int, int]
) -> None:
    """The offline charger let Ann charge in the middle of Bob's booking (Bob never came). Her
    walk-in cannot share Bob's time on the calendar, so its booking begins where Bob's ends; it is
    billed all the same, once, and the calendar stays free of overlaps."""
    charger, ann = world
    bob = app.marketplace.add_driver("Bob", "BOB-TAG").driver_id
    bobs = app.bookings.book(BookRequest(bob, charger, 1, 60, 10_000, starts_at=clock.now() + HOUR / 2))
    table = csms_v16.handlers(app.charging, "CP1", app.reports)
    began = bobs.starts_at + timedelta(minutes=10)
    clock.advance(2 * 3_600)
    replay16(table, "CARD-1", (0, began), (4_000, began + timedelta(minutes=20)))
    (walk_in,) = bookings_of(app, ann)
    assert walk_in.status is BookingStatus.COMPLETED
    assert bobs.ends_at == walk_in.starts_at < walk_in.ends_at <= bobs.ends_at + timedelta(seconds=1)
    assert captured(app, walk_in.booking_id) == 180
    app.bookings.expire_no_shows()
    assert failing(app) == set()


def test_two_walk_ins_queued_back_to_back_are_each_booked_at_their_own_time(
    app: App, clock: ManualClock, world: tuple[int, int]
) -> None:
    """The first walk-in's booking ends at its stop's own time, not when the replay reached us, so
    the second, started after it, is booked from its own start too."""
    _, ann = world
    bob = app.marketplace.add_driver("Bob", "BOB-TAG").driver_id
    app.tokens.add(bob, "CARD-2")
    table = csms_v16.handlers(app.charging, "CP1", app.reports)
    t0 = clock.now()
    clock.advance(4 * 3_600)
    replay16(table, "CARD-1", (0, t0), (5_000, t0 + HOUR))
    replay16(table, "CARD-2", (5_000, t0 + 2 * HOUR), (7_000, t0 + 3 * HOUR))
    (first,), (second,) = bookings_of(app, ann), bookings_of(app, bob)
    assert (first.starts_at, first.ends_at) == (t0, t0 + HOUR)
    assert (second.starts_at, second.ends_at) == (t0 + 2 * HOUR, t0 + 3 * HOUR)
    assert (captured(app, first.booking_id), captured(app, second.booking_id)) == (225, 90)
    assert failing(app) == set()


def test_a_booked_drivers_replayed_start_charges_on_the_booking_it_began_in(
    app: App, clock: ManualClock, world: tuple[int, int]
) -> None:
    """Ann charged within her booking while the charger was offline; the replay arrives after the
    booking's end. It is her booking's session (booked price, her hold), not a walk-in on top of a
    booking then expired as a no-show."""
    charger, ann = world
    booked = app.bookings.book(BookRequest(ann, charger, 1, 60, 10_000))
    table = csms_v16.handlers(app.charging, "CP1", app.reports)
    began = clock.now() + timedelta(minutes=5)
    clock.advance(2 * 3_600)
    replay16(table, "CARD-1", (0, began), (5_000, began + timedelta(minutes=50)))
    app.bookings.expire_no_shows()
    (only,) = bookings_of(app, ann)
    assert (only.booking_id, only.status, only.fee) == (booked.booking_id, BookingStatus.COMPLETED, 0)
    assert captured(app, only.booking_id) == 150  # 5 kWh at the booked 30p
    assert failing(app) == set()


def test_a_replayed_2_0_1_walk_in_is_booked_from_its_own_start(
    app: App, clock: ManualClock, world: tuple[int, int]
) -> None:
    _, ann = world
    table = csms_v201.handlers(app.charging, "CP1", app.reports)
    began = clock.now()
    clock.advance(3 * 3_600)
    card = {"idToken": "CARD-1", "type": "ISO14443"}
    assert offline_event(table, "Started", 0, began, 1_000, idToken=card) == {
        "idTokenInfo": {"status": "Accepted"}
    }
    offline_event(table, "Updated", 1, began + HOUR / 2, 6_000)
    offline_event(table, "Ended", 2, began + HOUR, 11_000)
    offline_event(table, "Ended", 2, began + HOUR, 11_000)  # sent again: nothing more
    (walk_in,) = bookings_of(app, ann)
    assert (walk_in.status, walk_in.starts_at, walk_in.ends_at) == (
        BookingStatus.COMPLETED,
        began,
        began + HOUR,
    )
    assert captured(app, walk_in.booking_id) == 450
    assert failing(app) == set()
