"""Faults a scenario fires at given simulated times. Each action is a function of the running world."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App
from chargeshare.domain.booking import BookingStatus
from simulators.charger import VirtualCharger
from simulators.driver import World, seconds_left, sleep_sim
from simulators.wire_faults import ALL_COMMANDS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fault:
    at_s: int  # simulated seconds after the start of the run
    action: str
    count: int = 1
    duration_s: int = 0  # for faults that last (outages, disconnections, silences)
    lose_queue: bool = False  # reboot: the queued transaction messages die with the power
    skew_s: float = 0.0  # clock_skew: how far the chargers' clocks are off
    percent: float = 0.0  # drop_frames: share of each victim's outgoing frames lost, 0..100
    delay_s: float = 0.0  # delay_responses: how late each victim handles and answers a command
    commands: tuple[str, ...] = ()  # reject_commands: the actions refused; empty means all of them
    frames: int = 0  # malformed_frames: how many broken frames each victim sends
    protocol: str | None = None  # only chargers speaking this OCPP version ("1.6" or "2.0.1")


# A fault that needs victims waits for them a while (bookings a loaded machine is still placing).
VICTIMS_WAIT_REAL_S = 30.0
VICTIMS_POLL_SIM_S = 10.0


async def host_cancels(app: App, world: World, fault: Fault) -> int:
    """Hosts cancel the `count` oldest bookings that have not started, through the public API. Fewer
    than `count` confirmed yet: wait for more (bounded), as the drivers' requests may still be in
    flight on a loaded machine; their travel starts only once they are booked, so nobody has arrived."""
    give_up = asyncio.get_running_loop().time() + VICTIMS_WAIT_REAL_S
    while True:
        with app.store.reading() as tx:
            due = [b for b in tx.bookings.all() if b.status is BookingStatus.CONFIRMED][: fault.count]
        if len(due) >= fault.count or asyncio.get_running_loop().time() > give_up or seconds_left(world) <= 0:
            break
        await sleep_sim(world.clock, VICTIMS_POLL_SIM_S)
    done = 0
    for b in due:
        r = await world.hosts[b.host_id].request("POST", f"/bookings/{b.booking_id}/cancel")
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


def _victims(
    world: World, count: int, *, charging_first: bool, protocol: str | None = None
) -> list[VirtualCharger]:
    """`count` chargers (of one OCPP version if asked), those mid-transaction first (the
    interesting case), then by id."""

    def busy(vc: VirtualCharger) -> bool:
        return any(
            c.plugged is not None and c.plugged.transaction_id is not None for c in vc.connectors.values()
        )

    eligible = [vc for vc in world.chargers.values() if protocol is None or vc.protocol == protocol]
    ordered = sorted(eligible, key=lambda vc: (charging_first and not busy(vc), vc.cp_id))
    return ordered[:count]


async def _each(world: World, fault: Fault, action: Callable[[VirtualCharger], Awaitable[None]]) -> int:
    victims = _victims(world, fault.count, charging_first=True, protocol=fault.protocol)
    world.stats.faults_fired += 1
    await asyncio.gather(*(action(vc) for vc in victims))
    return len(victims)


async def disconnect(app: App, world: World, fault: Fault) -> int:
    """Chargers lose their link for `duration_s`, keep charging offline, queue and replay."""
    return await _each(world, fault, lambda vc: vc.disconnect_for(fault.duration_s))


async def reboot(app: App, world: World, fault: Fault) -> int:
    """Chargers power-cycle mid-transaction, with or without losing their message queue."""
    return await _each(world, fault, lambda vc: vc.reboot(lose_queue=fault.lose_queue))


async def silence(app: App, world: World, fault: Fault) -> int:
    """Chargers hang for `duration_s`: socket open, nothing said; only the heartbeat watchdog notices."""
    return await _each(world, fault, lambda vc: vc.silence_for(fault.duration_s))


async def duplicate_frames(app: App, world: World, fault: Fault) -> int:
    """From now on chargers send every transaction frame twice (a flaky network)."""

    async def on(vc: VirtualCharger) -> None:
        vc.duplicate_sends = True

    return await _each(world, fault, on)


async def clock_skew(app: App, world: World, fault: Fault) -> int:
    """Chargers' clocks drift by `skew_s`: their timestamps are wrong, our bookings must not be."""

    async def skew(vc: VirtualCharger) -> None:
        vc.clock_skew_s = fault.skew_s

    return await _each(world, fault, skew)


async def _for_a_while(world: World, fault: Fault, on: Callable[[VirtualCharger], None]) -> int:
    """Switch a wire fault on for each victim; with `duration_s`, switch it off again after."""
    victims = _victims(world, fault.count, charging_first=True, protocol=fault.protocol)
    world.stats.faults_fired += 1
    for vc in victims:
        on(vc)
    if fault.duration_s > 0:
        await sleep_sim(world.clock, fault.duration_s)
        for vc in victims:
            vc.wire.clear()
    return len(victims)


async def drop_frames(app: App, world: World, fault: Fault) -> int:
    """Chargers lose `percent` of the frames they send; transaction messages are retried."""

    def on(vc: VirtualCharger) -> None:
        vc.wire.drop_rate = fault.percent / 100

    return await _for_a_while(world, fault, on)


async def delay_responses(app: App, world: World, fault: Fault) -> int:
    """Chargers handle and answer every CSMS command `seconds` late."""

    def on(vc: VirtualCharger) -> None:
        vc.wire.delay_s = fault.delay_s

    return await _for_a_while(world, fault, on)


async def reject_commands(app: App, world: World, fault: Fault) -> int:
    """Chargers refuse the named CSMS commands (all of them if none are named)."""

    def on(vc: VirtualCharger) -> None:
        vc.wire.reject = frozenset(fault.commands) if fault.commands else frozenset({ALL_COMMANDS})

    return await _for_a_while(world, fault, on)


async def malformed_frames(app: App, world: World, fault: Fault) -> int:
    """Chargers send `frames` frames that break OCPP; the CSMS answers CALLERROR and carries on."""
    return await _each(world, fault, lambda vc: vc.send_malformed(fault.frames))


def wire_outcomes(chargers: Iterable[VirtualCharger]) -> dict[str, int]:
    """What the wire faults did across a fleet, for the run summary (`fault_outcomes.<name>`)."""
    totals: Counter[str] = Counter()
    for vc in chargers:
        totals["frames_dropped"] += vc.wire.dropped
        totals["responses_delayed"] += vc.wire.delayed
        totals["commands_rejected"] += vc.wire.rejected
        totals["malformed_frames_sent"] += vc.wire.malformed_sent
        totals["malformed_frames_answered"] += len(vc.wire.malformed_answers)
        totals["transaction_messages_given_up"] += vc.messages_given_up
    return dict(totals)


ACTIONS: dict[str, Callable[[App, World, Fault], Coroutine[Any, Any, int]]] = {
    "host_cancels": host_cancels,
    "payment_outage": payment_outage,
    "disconnect": disconnect,
    "reboot": reboot,
    "silence": silence,
    "duplicate_frames": duplicate_frames,
    "clock_skew": clock_skew,
    "drop_frames": drop_frames,
    "delay_responses": delay_responses,
    "reject_commands": reject_commands,
    "malformed_frames": malformed_frames,
}


async def run_faults(app: App, world: World, faults: tuple[Fault, ...]) -> None:
    """Fire each fault at its time, while earlier ones may still be lasting; bounded by the number
    of faults."""
    elapsed = 0.0
    fired: list[asyncio.Task[int]] = []
    try:
        for fault in sorted(faults, key=lambda f: f.at_s):
            await sleep_sim(world.clock, fault.at_s - elapsed)
            elapsed = fault.at_s
            fired.append(asyncio.create_task(ACTIONS[fault.action](app, world, fault)))
        await asyncio.gather(*fired)
    finally:
        for task in fired:
            task.cancel()
