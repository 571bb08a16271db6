"""Scenario faults in virtual time. Socket faults map onto the in-process link: a disconnect drops
it (the backend sees the link close, the charger queues transaction messages and replays them on
reconnect), a silence keeps it but says nothing. Reconnection succeeds at the first attempt, since
nothing in-process can refuse it: backoff and jitter are a live-engine concern."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.errors import DomainError
from simulators.des.central import NotSupportedInDes
from simulators.des.charger import DesCharger, Process
from simulators.des.driver import DesWorld
from simulators.faults import Fault

Action = Callable[[DesWorld, Fault], Process]


class UnsupportedFault(NotSupportedInDes):
    """A fault the discrete-event engine cannot model; the message names the ones it can."""


def _victims(world: DesWorld, count: int) -> list[DesCharger]:
    """`count` chargers, those mid-transaction first (the interesting case), then by id."""

    def busy(c: DesCharger) -> bool:
        return any(
            x.plugged is not None and x.plugged.transaction_id is not None for x in c.connectors.values()
        )

    return sorted(world.chargers.values(), key=lambda c: (not busy(c), c.cp_id))[:count]


def _each(
    world: DesWorld, fault: Fault, make: Callable[[DesCharger], Generator[simpy.Event, Any, None] | None]
) -> Process:
    world.stats.faults_fired += 1
    running = []
    for charger in _victims(world, fault.count):
        process = make(charger)
        if process is not None:
            running.append(world.env.process(process))
    yield world.env.all_of(running)


def host_cancels(world: DesWorld, fault: Fault) -> Process:
    """Hosts cancel the `count` oldest bookings that have not started."""
    app = world.app
    with app.store.transaction() as tx:
        due = [b for b in tx.bookings.all() if b.status is BookingStatus.CONFIRMED][: fault.count]
    done = 0
    for b in due:
        try:
            app.bookings.cancel(b.booking_id, host_id=b.host_id)
            done += 1
        except DomainError:
            pass  # it started or ended meanwhile, as a 409 on the live route
    world.stats.faults_fired += 1
    world.stats.outcomes_of_faults[fault.action] += done
    yield world.env.timeout(0)


def payment_outage(world: DesWorld, fault: Fault) -> Process:
    gateway = world.app.gateway
    if not isinstance(gateway, SimulatedGateway):
        raise UnsupportedFault("payment_outage needs the simulated payment gateway")
    gateway.down = True
    world.stats.faults_fired += 1
    yield world.env.timeout(fault.duration_s)
    gateway.down = False


def disconnect(world: DesWorld, fault: Fault) -> Process:
    return _each(world, fault, lambda c: c.disconnect_for(fault.duration_s))


def reboot(world: DesWorld, fault: Fault) -> Process:
    return _each(world, fault, lambda c: c.reboot(lose_queue=fault.lose_queue))


def silence(world: DesWorld, fault: Fault) -> Process:
    return _each(world, fault, lambda c: c.silence_for(fault.duration_s))


def duplicate_frames(world: DesWorld, fault: Fault) -> Process:
    def on(c: DesCharger) -> None:
        c.duplicate_sends = True

    return _each(world, fault, on)


def clock_skew(world: DesWorld, fault: Fault) -> Process:
    def skew(c: DesCharger) -> None:
        c.clock_skew_s = fault.skew_s

    return _each(world, fault, skew)


ACTIONS: dict[str, Action] = {
    "host_cancels": host_cancels,
    "payment_outage": payment_outage,
    "disconnect": disconnect,
    "reboot": reboot,
    "silence": silence,
    "duplicate_frames": duplicate_frames,
    "clock_skew": clock_skew,
}


def check_supported(faults: tuple[Fault, ...]) -> None:
    unknown = sorted({f.action for f in faults} - ACTIONS.keys())
    if unknown:
        raise UnsupportedFault(
            f"the DES engine cannot model fault(s) {', '.join(unknown)}; "
            f"it supports {', '.join(sorted(ACTIONS))} (use --engine live for the others)"
        )


def run_faults(world: DesWorld, faults: tuple[Fault, ...]) -> Process:
    """Fire each fault in order, as the live runner does: each one's `at_s` counts from the previous
    one's, and a lasting fault holds the timeline until it ends (ties in file order)."""
    elapsed = 0.0
    for fault in sorted(faults, key=lambda f: f.at_s):
        yield world.env.timeout(max(0.0, fault.at_s - elapsed))
        elapsed = fault.at_s
        yield world.env.process(ACTIONS[fault.action](world, fault))
