"""A scripted driver as a SimPy process, calling the services directly (no HTTP in virtual time).

It follows the live driver's script (`simulators.driver`): search the map, book the nearest free
charger among the first few, then charge, cancel or never turn up as its plan says; plug in, wait
until the car is done or the booking ends, unplug, and look for the receipt.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import simpy

from chargeshare.bootstrap import App
from chargeshare.domain.errors import BookingConflict, DomainError, InvalidTransition, PaymentUnavailable
from chargeshare.domain.ledger import EntryKind
from chargeshare.domain.search import SearchQuery
from chargeshare.services.booking import BookRequest
from chargeshare.services.records import BookingRecord
from simulators.des.charger import DesCharger, Process
from simulators.driver import (
    ALL_TAKEN,
    CANDIDATES,
    NONE_FREE_NEARBY,
    RECEIPT_CHECK_EVERY_S,
    RECEIPT_CHECKS,
    RETRY_AFTER_S,
    SEARCH_RADIUS_M,
    SEARCH_ROUNDS,
    DriverStats,
    NoCharger,
)
from simulators.evse import PlugRefused
from simulators.fleet import DriverPlan
from simulators.power import Vehicle


@dataclass
class DesWorld:
    env: simpy.Environment
    app: App
    chargers: dict[str, DesCharger]
    window_end_s: float
    stats: DriverStats

    def seconds_left(self) -> float:
        return self.window_end_s - self.env.now


def run_driver(plan: DriverPlan, driver_id: int, world: DesWorld) -> Process:
    outcome = yield from _run(plan, driver_id, world)
    world.stats.outcomes[outcome] += 1


def _run(plan: DriverPlan, driver_id: int, world: DesWorld) -> simpy.events.ProcessGenerator:
    yield world.env.timeout(plan.arrives_after_s)
    if world.seconds_left() <= 0:
        return "too_late"
    outcome, missed = "no_charger", NONE_FREE_NEARBY
    for _ in range(SEARCH_ROUNDS):
        try:
            found = _book_nearby(plan, driver_id, world)
        except NoCharger as exc:
            outcome, missed = "no_charger", exc.reason
        except PaymentUnavailable:
            world.stats.payments_down += 1
            outcome = "payments_down"  # a clean refusal: worth trying again later, like a full map
        except DomainError as exc:
            world.stats.errors.append(f"{plan.name}: booking refused: {exc}")
            return "error"
        else:
            return (yield from _use_booking(plan, driver_id, world, *found))
        if world.seconds_left() <= RETRY_AFTER_S:
            break
        yield world.env.timeout(RETRY_AFTER_S)
    if outcome == "no_charger":
        world.stats.no_charger_because[missed] += 1
    return outcome


def _book_nearby(plan: DriverPlan, driver_id: int, world: DesWorld) -> tuple[BookingRecord, DesCharger]:
    """The live driver's search and booking, as the HTTP routes would call the services; raises
    NoCharger when the round found nothing to book."""
    app = world.app
    starts_at = app.clock.now() + timedelta(seconds=plan.travel_s)
    minutes = max(15, min(240, math.ceil(plan.want_wh / 7_000 * 60 * 1.3) + 20))
    query = SearchQuery(
        centre=plan.home,
        radius_m=SEARCH_RADIUS_M,
        online_only=True,
        available_from=starts_at,
        available_until=starts_at + timedelta(minutes=minutes),
        limit=CANDIDATES,
    )
    found = app.marketplace.search(query)
    for c in found:
        try:
            booking = app.bookings.book(
                BookRequest(
                    driver_id,
                    c.charger_id,
                    1,
                    minutes,
                    plan.want_wh,
                    starts_at=starts_at,
                    override_smart_charging=plan.overrides,
                )
            )
        except (BookingConflict, InvalidTransition):
            world.stats.conflicts += 1  # the routes answer these with 409
            continue
        if world.stats.bookings_answered is not None:
            world.stats.bookings_answered.add(booking.booking_id)
        return booking, world.chargers[c.charge_point_id]
    raise NoCharger(ALL_TAKEN if found else NONE_FREE_NEARBY)


def _use_booking(
    plan: DriverPlan, driver_id: int, world: DesWorld, booking: BookingRecord, charger: DesCharger
) -> simpy.events.ProcessGenerator:
    env, app = world.env, world.app
    if plan.intent == "no_show":
        # The slot passes without its driver: the run lasts until it has (or the window ends), so the
        # backend's no-show sweep, not the run's wind-down, expires the booking with its fee.
        yield env.timeout(max(0.0, min(_until(world, booking.ends_at), world.seconds_left())))
        return "no_show"
    if plan.intent == "cancel":
        yield env.timeout(plan.travel_s / 2)
        try:
            app.bookings.cancel(booking.booking_id, driver_id=driver_id)
        except DomainError:
            return "error"
        return "cancelled"
    yield env.timeout(max(0.0, min(_until(world, booking.starts_at), world.seconds_left())))
    vehicle = Vehicle(plan.battery_wh, plan.soc_wh, plan.max_power_w)
    try:
        done = charger.plug_in(1, plan.id_tag, vehicle, plan.want_wh)
    except PlugRefused:
        return "refused_at_charger"  # in use or reserved for someone else: our booking failed meanwhile
    if not charger.transaction_running(1):
        charger.unplug(1)
        with contextlib.suppress(DomainError):  # already ended: the live driver ignores this answer too
            app.bookings.cancel(booking.booking_id, driver_id=driver_id)
        return "refused_at_charger"
    wait_s = min(_until(world, booking.ends_at), world.seconds_left())
    if wait_s > 0:
        yield done | env.timeout(wait_s)
    charger.unplug(1)
    for _ in range(RECEIPT_CHECKS):
        cost = receipt_cost(app, booking.booking_id)
        if cost is not None:
            world.stats.receipts_pence += cost
            return "charged"
        yield env.timeout(RECEIPT_CHECK_EVERY_S)
    world.stats.errors.append(f"{plan.name}: no receipt for booking {booking.booking_id}")
    return "unpaid"


def _until(world: DesWorld, at: datetime) -> float:
    return (at - world.app.clock.now()).total_seconds()


def receipt_cost(app: App, booking_id: int) -> int | None:
    """What the API's receipt shows: the captured total, once the session is billed and fully captured."""
    with app.store.transaction() as tx:
        session = tx.sessions.for_booking(booking_id)
        entries = tx.ledger.entries(booking_id)
    captured = sum(e.amount for e in entries if e.kind is EntryKind.CAPTURE)
    if session is None or session.billed_wh is None or session.cost is None or captured < session.cost:
        return None
    return captured
