"""V2G guests in SimPy virtual time: at the start of the run each guest books one of the fleet's
first chargers (OCPP 2.1) and sets export terms; when the booking begins the guest plugs in a
bidirectional car whose own floor is the one set, and leaves shortly before the booking ends. What
each charger's registers measured for the booking (import, export) is kept for the invariant that
holds the backend's bill and credit to them."""

from __future__ import annotations

from datetime import datetime, timedelta

from chargeshare.domain.accounts import Principal, Role
from chargeshare.domain.errors import DomainError
from chargeshare.services.booking import BookRequest
from simulators.des.charger import Process
from simulators.des.driver import DesWorld
from simulators.evse import PlugRefused
from simulators.power import Vehicle
from simulators.v2g import V2gShape

CONNECTOR_NO = 1
LEAVE_BEFORE_END_S = 600


def guest_tag(i: int) -> str:
    return f"V2G-GUEST-{i + 1}"


BOOK_AFTER_S = 60  # the chargers have booted and reported their connectors by then


def run_guests(world: DesWorld, shape: V2gShape, charger_ids: list[int], start: datetime) -> Process:
    """Each guest books one of the first `guests` chargers with export terms, then comes to charge."""
    env = world.env
    yield env.timeout(BOOK_AFTER_S)
    if shape.buyer == "home":  # each guest's host buys its export, as the host would choose
        with world.app.store.reading() as tx:
            hosts = {tx.chargers.by_id(c).host_id for c in charger_ids[: shape.guests]}
        for host_id in sorted(hosts):
            world.app.v2g.set_buyer_for(host_id, shape.buyer)
    bookings = [_book(world, shape, i, c, start) for i, c in enumerate(charger_ids[: shape.guests])]
    guests = [env.process(_guest(world, shape, i, b)) for i, b in enumerate(bookings) if b is not None]
    yield env.all_of(guests)


def _book(world: DesWorld, shape: V2gShape, i: int, charger_id: int, start: datetime) -> int | None:
    app = world.app
    starts_at = max(app.clock.now(), start + timedelta(minutes=shape.arrive_after_minutes))
    driver = app.marketplace.add_driver(f"V2G guest {i + 1}", guest_tag(i)).driver_id
    try:
        booking = app.bookings.book(
            BookRequest(
                driver, charger_id, CONNECTOR_NO, shape.hours * 60, shape.want_wh, starts_at=starts_at
            )
        )
    except DomainError as exc:
        world.stats.errors.append(f"V2G guest {i + 1} could not book: {exc}")
        return None
    who = Principal(account_id=0, role=Role.DRIVER, driver_id=driver)
    app.v2g.set_terms(who, booking.booking_id, shape.export_price_per_kwh, shape.soc_floor_pct)
    if world.stats.bookings_answered is not None:
        world.stats.bookings_answered.add(booking.booking_id)
    return booking.booking_id


def _guest(world: DesWorld, shape: V2gShape, i: int, booking_id: int) -> Process:
    env, app = world.env, world.app
    with app.store.reading() as tx:
        booking = tx.bookings.get(booking_id)
        cp_id = tx.chargers.by_id(booking.charger_id).charge_point_id
    yield env.timeout(max(0.0, (booking.starts_at - app.clock.now()).total_seconds()))
    charger = world.chargers[cp_id]
    c = charger.connectors[CONNECTOR_NO]
    battery = shape.battery_wh
    vehicle = Vehicle(
        battery,
        battery * shape.arrival_soc_pct // 100,
        11_000,
        floor_soc_wh=battery * shape.soc_floor_pct // 100,
    )
    imported, exported = c.meter.register_wh, c.export_meter.register_wh
    try:
        done = charger.plug_in(CONNECTOR_NO, guest_tag(i), vehicle, shape.want_wh)
    except PlugRefused:
        world.stats.errors.append(f"V2G guest {i + 1} could not plug in at {cp_id}")
        return
    leave_s = (booking.ends_at - app.clock.now()).total_seconds() - LEAVE_BEFORE_END_S
    yield done | env.timeout(max(1.0, leave_s))
    charger.unplug(CONNECTOR_NO)
    measured = world.stats.v2g_registers
    if measured is not None:
        measured[booking_id] = (c.meter.register_wh - imported, c.export_meter.register_wh - exported)
