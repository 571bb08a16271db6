"""A fleet-share hub in SimPy virtual time: at the start of the run the business account books its
night blocks on the hub's chargers (all or nothing); each occurrence's van arrives soon after the
block opens, charges with the fleet's tag and leaves before it closes; hosts may cancel occurrences
inside the contract's notice. At the end every month that is over is invoiced and paid."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.errors import DomainError
from chargeshare.services.fleet import BlockConflict, ConnectorRef
from chargeshare.services.records import BookingRecord
from simulators.des.charger import Process
from simulators.des.driver import DesWorld
from simulators.evse import PlugRefused
from simulators.fleet_hub import HUB_TAG, HubShape, settle_accounts
from simulators.power import Vehicle

CONNECTOR_NO = 1
LEAVE_BEFORE_END_S = 600  # a van leaves this long before its block closes, charged or not
LATE_CANCEL_AT_S = 3600  # hosts cancel their late occurrences this far into the run


def book_hub(world: DesWorld, hub: HubShape, charger_ids: list[int], start: datetime, duration_s: int) -> int:
    """The fleet and its blocks on the first of `charger_ids`; the fleet's id. A refused block is
    counted, clash by clash."""
    app = world.app
    fleet = app.fleet.create_account("Hub Fleet", HUB_TAG)
    refs = [ConnectorRef(c, CONNECTOR_NO) for c in charger_ids[: hub.chargers]]
    try:
        booked = app.fleet.book_block(fleet.fleet_id, hub.rule(start, duration_s), refs, hub.policy())
    except BlockConflict as exc:
        world.stats.fleet_hub["block_clashes"] += exc.total
        return fleet.fleet_id
    if world.stats.bookings_answered is not None:  # the fleet heard of every one of them
        world.stats.bookings_answered.update(b.booking_id for b in booked.bookings)
    return fleet.fleet_id


def run_hub(world: DesWorld, hub: HubShape, fleet_id: int, seed: int) -> Process:
    """Every occurrence's van, and the hosts' late cancellations."""
    env, app = world.env, world.app
    rng = random.Random(f"{seed}:fleet-hub")
    occurrences = app.fleet.occurrences(fleet_id)
    vans = [env.process(_van(world, hub, b, rng.randrange(hub.van_arrival_max_s + 1))) for b in occurrences]
    yield env.timeout(min(LATE_CANCEL_AT_S, world.window_end_s))
    _cancel_late(world, hub, occurrences)
    yield env.all_of(vans)


def _cancel_late(world: DesWorld, hub: HubShape, occurrences: list[BookingRecord]) -> None:
    """Hosts cancel the first `late_cancels` occurrences still to start inside the notice."""
    app, now = world.app, world.now()
    notice = timedelta(hours=hub.notice_hours)
    due = [b for b in occurrences if now < b.starts_at < now + notice][: hub.late_cancels]
    for b in due:
        try:
            app.bookings.cancel(b.booking_id, host_id=b.host_id)
        except DomainError:
            continue
        world.stats.fleet_hub["occurrences_cancelled_late"] += 1


def _van(world: DesWorld, hub: HubShape, booking: BookingRecord, arrives_after_s: int) -> Process:
    env, app = world.env, world.app
    opens_s = (booking.starts_at - app.clock.now()).total_seconds()
    yield env.timeout(max(0.0, opens_s) + arrives_after_s)
    with app.store.reading() as tx:
        current = tx.bookings.get(booking.booking_id)
        cp_id = tx.chargers.by_id(booking.charger_id).charge_point_id
    if current.status is not BookingStatus.CONFIRMED:
        return  # cancelled by its host, or expired
    world.stats.fleet_hub["van_arrivals"] += 1
    charger = world.chargers[cp_id]
    vehicle = Vehicle(battery_wh=75_000, soc_wh=15_000, max_power_w=11_000)
    try:
        done = charger.plug_in(CONNECTOR_NO, HUB_TAG, vehicle, hub.van_wh)
    except PlugRefused:
        world.stats.fleet_hub["vans_refused"] += 1
        return
    leave_s = (booking.ends_at - app.clock.now()).total_seconds() - LEAVE_BEFORE_END_S
    yield done | env.timeout(max(1.0, leave_s))
    charger.unplug(CONNECTOR_NO)


def close_hub(world: DesWorld, hub: HubShape, fleet_id: int, start: datetime) -> None:
    settle_accounts(world.app, fleet_id, start, hub.pay_percent)
