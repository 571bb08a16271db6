"""The driver script's discrete-event engine: a SimPy process that takes each step of
`simulators.driver` by calling the services directly (no HTTP in virtual time), as the API's routes
would, and at the DES charger."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import simpy

from chargeshare.bootstrap import App
from chargeshare.domain.errors import (
    BookingConflict,
    DomainError,
    InvalidTransition,
    PaymentUnavailable,
    PriceAboveLimit,
)
from chargeshare.domain.search import SearchQuery
from chargeshare.services.booking import BookRequest
from chargeshare.services.receipts import receipt_for
from simulators import driver as script
from simulators.des.charger import DesCharger, Process
from simulators.driver import DriverStats
from simulators.evse import PlugRefused
from simulators.fleet import DriverPlan
from simulators.house_load import HouseProfile


@dataclass
class DesWorld:
    env: simpy.Environment
    app: App
    chargers: dict[str, DesCharger]
    window_end_s: float
    stats: DriverStats
    # How long (simulated) a driver keeps looking for a receipt after unplugging.
    receipt_patience_s: float = script.RECEIPT_CHECKS * script.RECEIPT_CHECK_EVERY_S
    v2g_chargers: list[int] = field(default_factory=list)  # where V2G guests book (simulators/des/v2g.py)
    houses: dict[int, HouseProfile] = field(default_factory=dict)  # each site's simulated house, by id

    def now(self) -> datetime:
        return self.app.clock.now()

    def seconds_left(self) -> float:
        return self.window_end_s - self.env.now


def run_driver(plan: DriverPlan, driver_id: int, world: DesWorld) -> Process:
    """The script as a SimPy process: only its waits take virtual time; every other step is a
    direct call, answered at the same instant."""
    steps = script.drive(plan, world, world.stats, world.receipt_patience_s)
    outcome: object = None
    while True:
        try:
            effect = steps.send(outcome)
        except StopIteration as end:
            world.stats.outcomes[end.value] += 1
            return
        match effect:
            case script.Sleep(seconds):
                yield world.env.timeout(seconds)
                outcome = None
            case script.WaitDone(plugged, timeout_s):
                assert isinstance(plugged.handle, simpy.Event)
                yield plugged.handle | world.env.timeout(timeout_s)
                outcome = None
            case _:
                outcome = _take(world, driver_id, effect)


def _take(world: DesWorld, driver_id: int, effect: script.Effect[object]) -> object:
    app = world.app
    match effect:
        case script.Search(centre, radius_m, available_from, available_until, limit):
            query = SearchQuery(
                centre=centre,
                radius_m=radius_m,
                online_only=True,
                available_from=available_from,
                available_until=available_until,
                limit=limit,
            )
            return [script.Candidate(c.charger_id, c.charge_point_id) for c in app.marketplace.search(query)]
        case script.Quote(candidate, starts_at, minutes):
            # Held: the booking that follows names it, and is made at this price.
            _, held = app.pricing.hold(driver_id, candidate.charger_id, starts_at, minutes)
            return script.Quoted(held.per_kwh, held.quote_id)
        case script.Book():
            return _book(app, driver_id, effect)
        case script.Cancel(booking_id):
            try:
                app.bookings.cancel(booking_id, driver_id=driver_id)
            except DomainError:
                return False
            return True
        case script.PlugIn(cp_id, id_tag, vehicle, target_wh):
            charger = world.chargers[cp_id]
            try:
                done = charger.plug_in(script.CONNECTOR_NO, id_tag, vehicle, target_wh)
            except PlugRefused:
                return None
            return script.Plugged(done, charger.transaction_running(script.CONNECTOR_NO))
        case script.Unplug(cp_id):
            world.chargers[cp_id].unplug(script.CONNECTOR_NO)
            return None
        case script.FetchReceipt(booking_id):
            return receipt_cost(app, booking_id)
    raise TypeError(f"the DES driver cannot take {effect!r}")


def _book(app: App, driver_id: int, b: script.Book) -> script.BookAnswer:
    """As the booking route calls the service, its refusals as the route answers them."""
    req = BookRequest(
        driver_id,
        b.candidate.charger_id,
        script.CONNECTOR_NO,
        b.minutes,
        b.max_energy_wh,
        starts_at=b.starts_at,
        override_smart_charging=b.override_smart_charging,
        max_price_per_kwh=b.max_price_per_kwh,
        quote_id=b.quote_id,
    )
    try:
        booking = app.bookings.book(req)
    except PriceAboveLimit:
        return script.TOO_DEAR
    except (BookingConflict, InvalidTransition):
        return script.TAKEN  # the route's 409
    except PaymentUnavailable:
        return script.PAYMENTS_UNAVAILABLE
    except DomainError as exc:
        return script.Refused(f"booking refused: {exc}")
    return script.Booked(booking.booking_id, booking.starts_at, booking.ends_at, b.candidate.charge_point_id)


def receipt_cost(app: App, booking_id: int) -> int | None:
    """What the API's receipt shows (its own rule): the total, once billed and fully captured."""
    with app.store.transaction() as tx:
        receipt = receipt_for(tx, tx.bookings.get(booking_id), app.config.rules)
    return None if receipt is None else receipt.cost
