"""The discrete-event engine's fault executor: applies what the catalogue (`simulators.faults`)
decides, in virtual time. Socket faults map onto the in-process link: a disconnect drops it (the
backend sees the link close, the charger queues transaction messages and replays them on
reconnect), a silence keeps it but says nothing. Reconnection succeeds at the first attempt, since
nothing in-process can refuse it: backoff and jitter are a live-engine concern. A spoofing charger
sends its frames over a link of its own (an unregistered one is let in only as the server would let
it in). Faults this engine cannot model are refused by name, with the reason."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

import simpy

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.domain.errors import DomainError
from chargeshare.ocpp.timestamps import format_ts
from simulators.des.central import NotSupportedInDes
from simulators.des.charger import DesCharger, Process
from simulators.des.driver import DesWorld
from simulators.driver import DriverStats
from simulators.faults import (
    CATALOGUE,
    VICTIMS_POLL_SIM_S,
    Fault,
    FaultRecord,
    Planned,
    Scope,
    Target,
    confirmed,
    fire,
    not_in_des,
    plan,
    running_transaction,
    spoofer,
)
from simulators.spoofing import spoof_applied, spoof_messages

# What a fault does to one charger: a process while it lasts, or None when it is done at once.
ChargerAction = Callable[[DesCharger, Fault], Process | None]
WorldAction = Callable[[DesWorld, Fault, FaultRecord], Process]
T = TypeVar("T", bound=Target)


class UnsupportedFault(NotSupportedInDes):
    """A fault the discrete-event engine cannot model; the message names the ones it can."""


def _duplicate_frames(c: DesCharger, fault: Fault) -> None:
    c.duplicate_sends = True


def _clock_skew(c: DesCharger, fault: Fault) -> None:
    c.clock_skew_s = fault.skew_s


def _clock_jump(c: DesCharger, fault: Fault) -> None:
    c.clock_skew_s += fault.skew_s


CHARGER_ACTIONS: dict[str, ChargerAction] = {
    "disconnect": lambda c, f: c.disconnect_for(f.duration_s),
    "reboot": lambda c, f: c.reboot(lose_queue=f.lose_queue),
    "silence": lambda c, f: c.silence_for(f.duration_s),
    "duplicate_frames": _duplicate_frames,
    "clock_skew": _clock_skew,
    "clock_jump": _clock_jump,
}


def host_cancels(world: DesWorld, fault: Fault, fired: FaultRecord) -> Process:
    """Hosts cancel the `count` oldest bookings that have not started."""
    app = world.app
    with app.store.transaction() as tx:
        due = confirmed(tx.bookings.all(), fault.count)
    done = 0
    for b in due:
        try:
            app.bookings.cancel(b.booking_id, host_id=b.host_id)
            done += 1
        except DomainError:
            pass  # it started or ended meanwhile, as a 409 on the live route
    world.stats.outcomes_of_faults[fault.action] += done
    yield world.env.timeout(0)


def payment_outage(world: DesWorld, fault: Fault, fired: FaultRecord) -> Process:
    gateway = world.app.gateway
    if not isinstance(gateway, SimulatedGateway):
        raise UnsupportedFault("payment_outage needs the simulated payment gateway")
    gateway.down = True
    yield world.env.timeout(fault.duration_s)
    gateway.down = False


def _unregistered(world: DesWorld, victim: DesCharger, n: int) -> DesCharger | None:
    """A charger the backend has never heard of, on a link of its own; None where the server would
    refuse its upgrade (unknown chargers not allowed)."""
    cp_id = f"UNREGISTERED{n}"
    app = world.app
    if app.marketplace.authenticate_charger(cp_id, None, allow_unknown=app.charging.allow_unknown):
        return None
    rogue = DesCharger(
        world.env,
        victim.central,
        cp_id,
        [7_400],
        epoch=victim.epoch,
        meter_interval_s=victim.meter_interval_s,
        protocol=victim.protocol,
    )
    rogue.connect()
    return rogue


def spoofed_charger(world: DesWorld, fault: Fault, fired: FaultRecord) -> Process:
    """As the live fault: `count` times, once a charger runs a transaction, another charger names it
    with an absurd reading and a stop."""
    outcomes = world.stats.outcomes_of_faults
    fleet = world.chargers.values()
    spoofed: set[str] = set()
    for n in range(1, fault.count + 1):
        found = running_transaction(fleet, fault.protocol, spoofed)
        while found is None and world.env.now < world.window_end_s:
            yield world.env.timeout(VICTIMS_POLL_SIM_S)
            found = running_transaction(fleet, fault.protocol, spoofed)
        if found is None:
            outcomes["spoofs_without_victim"] += 1
            continue
        victim, connector, tx = found
        spoofed.add(victim.cp_id)
        fired.chargers.append(victim.cp_id)
        if fault.spoofer == "unregistered":
            rogue = _unregistered(world, victim, n)
            if rogue is None:
                outcomes["spoof_links_refused"] += 1
                continue
        else:
            rogue = spoofer(fleet, victim)
            if rogue is None:
                outcomes["spoofs_without_spoofer"] += 1
                continue
        claimed, messages = spoof_messages(victim.dialect, connector, tx, format_ts(world.app.clock.now()))
        for action, payload in messages:
            rogue.send_call(action, payload)
            outcomes["spoof_frames_sent"] += 1
        if fault.spoofer == "unregistered":
            rogue.stop()
        outcomes["spoofs"] += 1
        outcomes["spoofs_applied"] += spoof_applied(world.app, victim.cp_id, tx, claimed)


WORLD_ACTIONS: dict[str, WorldAction] = {
    "host_cancels": host_cancels,
    "payment_outage": payment_outage,
    "spoofed_charger": spoofed_charger,
}


def check_supported(faults: tuple[Fault, ...]) -> None:
    why = not_in_des(faults)
    if why is not None:
        raise UnsupportedFault(why)


def run_faults(world: DesWorld, faults: tuple[Fault, ...]) -> Process:
    """Play the scenario's fault timeline on the run's world."""

    def apply(p: Planned, fired: FaultRecord, chosen: list[DesCharger]) -> Process:
        if CATALOGUE[p.fault.action].scope is not Scope.CHARGERS:
            yield world.env.process(WORLD_ACTIONS[p.fault.action](world, p.fault, fired))
            return
        act = CHARGER_ACTIONS[p.fault.action]
        lasting = [world.env.process(x) for x in (act(c, p.fault) for c in chosen) if x is not None]
        yield world.env.all_of(lasting)

    yield from play(world.env, faults, lambda: world.chargers.values(), apply, world.stats)


def play(
    env: simpy.Environment,
    faults: tuple[Fault, ...],
    fleet: Callable[[], Iterable[T]],
    apply: Callable[[Planned, FaultRecord, list[T]], Process],
    stats: DriverStats,
) -> Process:
    """Fire each planned fault at its time in `env`, whatever is still lasting then, on the
    chargers the catalogue picks from `fleet`; each fired fault is recorded in `stats.fault_log`."""
    origin = env.now

    def start(p: Planned) -> Process:
        yield env.timeout(max(0.0, origin + p.start_s - env.now))
        fired, chosen = fire(p, env.now - origin, fleet())
        stats.fault_log.append(fired)
        stats.faults_fired += 1
        yield env.process(apply(p, fired, chosen))

    yield env.all_of([env.process(start(p)) for p in plan(faults)])
