"""Faults a scenario fires at given simulated times. Each action is a function of the running world."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App
from chargeshare.domain.booking import BookingStatus
from simulators.driver import World, sleep_sim

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fault:
    at_s: int  # simulated seconds after the start of the run
    action: str
    count: int = 1
    duration_s: int = 0  # for faults that last (outages)


async def host_cancels(app: App, world: World, fault: Fault) -> int:
    """Hosts cancel the `count` oldest bookings that have not started, through the public API."""
    with app.store.transaction() as tx:
        due = [b for b in tx.bookings() if b.status is BookingStatus.CONFIRMED][: fault.count]
    done = 0
    for b in due:
        r = await world.http.post(f"/bookings/{b.booking_id}/cancel", json={"host_id": b.host_id})
        if r.status_code == 200:
            done += 1
        else:
            log.info("host cancel of booking %s answered %s", b.booking_id, r.status_code)
    world.stats.faults_fired += 1
    world.stats.outcomes_of_faults[fault.action] += done
    return done


async def payment_outage(app: App, world: World, fault: Fault) -> int:
    """The payment provider is unreachable for `duration_s`; charging must carry on regardless."""
    gateway = app.gateway
    if not isinstance(gateway, SimulatedGateway):
        raise RuntimeError("payment_outage needs the simulated payment gateway")
    gateway.down = True
    world.stats.faults_fired += 1
    try:
        await sleep_sim(world.clock, fault.duration_s)
    finally:
        gateway.down = False
    return 1


ACTIONS: dict[str, Callable[[App, World, Fault], Awaitable[int]]] = {
    "host_cancels": host_cancels,
    "payment_outage": payment_outage,
}


async def run_faults(app: App, world: World, faults: tuple[Fault, ...]) -> None:
    """Fire each fault at its time (in order); bounded by the number of faults."""
    elapsed = 0.0
    for fault in sorted(faults, key=lambda f: f.at_s):
        await sleep_sim(world.clock, fault.at_s - elapsed)
        elapsed = fault.at_s
        await ACTIONS[fault.action](app, world, fault)
