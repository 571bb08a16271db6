"""Scenario faults in virtual time. Socket faults map onto the in-process link: a disconnect drops
it (the backend sees the link close, the charger queues transaction messages and replays them on
reconnect), a silence keeps it but says nothing. Reconnection succeeds at the first attempt, since
nothing in-process can refuse it: backoff and jitter are a live-engine concern. A spoofing charger
sends its frames over a link of its own (an unregistered one is let in only as the server would let
it in). Faults this engine cannot model are refused by name, with the reason."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.errors import DomainError
from chargeshare.ocpp.timestamps import format_ts
from simulators.des.central import NotSupportedInDes
from simulators.des.charger import DesCharger, Process
from simulators.des.driver import DesWorld
from simulators.evse import Transaction, VirtualConnector
from simulators.faults import VICTIMS_POLL_SIM_S, Fault
from simulators.spoofing import spoof_applied, spoof_messages

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


Running = tuple[DesCharger, VirtualConnector, Transaction]


def _running(world: DesWorld, protocol: str | None, spoofed: set[str]) -> Running | None:
    """A transaction the backend knows of, on a charger not spoofed yet (by id; of one OCPP version
    if asked), as the live fault picks it."""
    for charger in sorted(world.chargers.values(), key=lambda c: c.cp_id):
        if charger.cp_id in spoofed or (protocol is not None and charger.dialect.version != protocol):
            continue
        for c in charger.connectors.values():
            tx = c.transaction
            if tx is not None and tx.wire_id is not None:
                return charger, c, tx
    return None


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
        protocol=victim.dialect.version,
    )
    rogue.connect()
    return rogue


def spoofed_charger(world: DesWorld, fault: Fault) -> Process:
    """As the live fault: `count` times, once a charger runs a transaction, another charger names it
    with an absurd reading and a stop."""
    world.stats.faults_fired += 1
    outcomes = world.stats.outcomes_of_faults
    spoofed: set[str] = set()
    for n in range(1, fault.count + 1):
        found = _running(world, fault.protocol, spoofed)
        while found is None and world.env.now < world.window_end_s:
            yield world.env.timeout(VICTIMS_POLL_SIM_S)
            found = _running(world, fault.protocol, spoofed)
        if found is None:
            outcomes["spoofs_without_victim"] += 1
            continue
        victim, connector, tx = found
        spoofed.add(victim.cp_id)
        if fault.spoofer == "unregistered":
            rogue = _unregistered(world, victim, n)
            if rogue is None:
                outcomes["spoof_links_refused"] += 1
                continue
        else:
            others = [
                c
                for c in sorted(world.chargers.values(), key=lambda c: c.cp_id)
                if c is not victim
                and c.dialect.version == victim.dialect.version
                and c.connected
                and not c.silent
            ]
            if not others:
                outcomes["spoofs_without_spoofer"] += 1
                continue
            rogue = others[0]
        claimed, messages = spoof_messages(victim.dialect, connector, tx, format_ts(world.app.clock.now()))
        for action, payload in messages:
            rogue.send_call(action, payload)
            outcomes["spoof_frames_sent"] += 1
        if fault.spoofer == "unregistered":
            rogue.stop()
        outcomes["spoofs"] += 1
        outcomes["spoofs_applied"] += spoof_applied(world.app, victim.cp_id, tx, claimed)


ACTIONS: dict[str, Action] = {
    "host_cancels": host_cancels,
    "payment_outage": payment_outage,
    "disconnect": disconnect,
    "reboot": reboot,
    "silence": silence,
    "duplicate_frames": duplicate_frames,
    "clock_skew": clock_skew,
    "spoofed_charger": spoofed_charger,
}

# Why the live engine's other faults have no meaning here.
WHY_NOT: dict[str, str] = {
    "provider_slow": "a payment provider call is answered in the virtual instant it is made",
    "racing_cancels": "one thread calls the services one after another, so no two requests race",
    "racing_payouts": "one thread calls the services one after another, so no two requests race",
    "drop_frames": "the in-process link has no wire",
    "delay_responses": "the in-process link has no wire",
    "reject_commands": "the in-process link has no wire",
    "malformed_frames": "the in-process link has no wire",
    "backend_crash": "the backend runs in the engine's own process, which has no process to kill",
    "node_crash": "the backend runs in the engine's own process, which has no process to kill",
    "node_restart": "the backend runs in the engine's own process, which has no process to kill",
}


def check_supported(faults: tuple[Fault, ...]) -> None:
    unknown = sorted({f.action for f in faults} - ACTIONS.keys())
    if unknown:
        named = ", ".join(f"{a} ({WHY_NOT[a]})" if a in WHY_NOT else a for a in unknown)
        raise UnsupportedFault(
            f"the DES engine cannot model fault(s) {named}; "
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
