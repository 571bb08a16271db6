"""Faults a scenario fires at given simulated times. Each action is a function of the running world."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from websockets.exceptions import WebSocketException

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App
from chargeshare.domain import ledger
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.session import SessionStatus
from chargeshare.ocpp.timestamps import format_ts
from chargeshare.services.records import BookingRecord
from chargeshare.services.settlement import FEE, PENDING, RELEASE
from simulators.backend_nodes import BackendProcesses
from simulators.charger import VirtualCharger
from simulators.driver import ApiSession, World, seconds_left
from simulators.evse import Transaction, VirtualConnector
from simulators.pacing import sleep_sim
from simulators.spoofing import spoof_applied, spoof_messages
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
    latency_s: float = 0.0  # provider_slow: simulated seconds each payment provider call takes
    spoofer: str = "fleet"  # spoofed_charger: another charger of the fleet, or an "unregistered" one
    failpoint: str | None = None  # backend_crash: die at this money-path boundary (chargeshare.failpoints)


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


async def _wait_for(world: World, ready: Callable[[], bool], *, until: datetime | None) -> bool:
    """Until `ready()` holds (True) or the clock reaches `until` (False); None: no bound but the
    run's own."""
    while not ready():
        if until is not None and world.clock.now() >= until:
            return False
        await sleep_sim(world.clock, VICTIMS_POLL_SIM_S)
    return True


def _gateway(app: App, action: str) -> SimulatedGateway:
    gateway = app.gateway
    if not isinstance(gateway, SimulatedGateway):
        raise RuntimeError(f"{action} needs the simulated payment gateway")
    return gateway


async def provider_slow(app: App, world: World, fault: Fault) -> int:
    """For `duration_s` every payment provider call takes `latency_s` simulated seconds to answer
    (in the server's worker threads); chargers, bookings and stops must carry on meanwhile."""
    gateway = _gateway(app, fault.action)
    gateway.clock_latency_s = fault.latency_s
    world.stats.faults_fired += 1
    try:
        await sleep_sim(world.clock, fault.duration_s)
    finally:
        gateway.clock_latency_s = 0.0
    return 1


def provider_outcomes(app: App) -> dict[str, int]:
    """What a slow provider did, for the run summary (`fault_outcomes.<name>`)."""
    gateway = app.gateway
    if not isinstance(gateway, SimulatedGateway):
        return {}
    return {"provider_calls_slowed": gateway.slowed, "provider_calls_timed_out": gateway.timed_out}


Running = tuple[VirtualCharger, VirtualConnector, Transaction]


def _running(world: World, protocol: str | None, spoofed: set[str]) -> Running | None:
    """A transaction the backend knows of, on a charger not spoofed yet (by id; of one OCPP version
    if asked)."""
    for vc in sorted(world.chargers.values(), key=lambda vc: vc.cp_id):
        if vc.cp_id in spoofed or (protocol is not None and vc.protocol != protocol):
            continue
        for c in vc.connectors.values():
            tx = c.transaction
            if tx is not None and tx.wire_id is not None:
                return vc, c, tx
    return None


async def _unregistered(victim: VirtualCharger, n: int) -> VirtualCharger | None:
    """A charger the backend has never heard of, speaking the victim's version, connected without
    credentials; None when the server refuses it (as it does unless unknown chargers are allowed)."""
    rogue = VirtualCharger(
        f"UNREGISTERED{n}", victim.server_url, victim.clock, [7_400], protocol=victim.protocol
    )
    try:
        await rogue.start()
    except (OSError, RuntimeError, TimeoutError, WebSocketException) as exc:
        log.info("the unregistered spoofer was refused: %s", exc)
        await rogue.stop()
        return None
    return rogue


async def spoofed_charger(app: App, world: World, fault: Fault) -> int:
    """`count` times: once a charger (of `protocol` if given) runs a transaction, another charger
    names it with a reading no car could draw and a stop (see `simulators.spoofing`). The spoofer
    is another charger of the fleet speaking the victim's version, or an unregistered one."""
    world.stats.faults_fired += 1
    outcomes = world.stats.outcomes_of_faults
    spoofed: set[str] = set()
    for n in range(1, fault.count + 1):
        await _wait_for(
            world, lambda: _running(world, fault.protocol, spoofed) is not None, until=world.window_end
        )
        found = _running(world, fault.protocol, spoofed)
        if found is None:
            outcomes["spoofs_without_victim"] += 1
            continue
        victim, connector, tx = found
        spoofed.add(victim.cp_id)
        if fault.spoofer == "unregistered":
            rogue = await _unregistered(victim, n)
            if rogue is None:
                outcomes["spoof_links_refused"] += 1
                continue
        else:
            others = [
                vc
                for vc in sorted(world.chargers.values(), key=lambda vc: vc.cp_id)
                if vc is not victim and vc.protocol == victim.protocol and vc.connected and not vc.silent
            ]
            if not others:
                outcomes["spoofs_without_spoofer"] += 1
                continue
            rogue = others[0]
        try:
            claimed, messages = spoof_messages(victim.dialect, connector, tx, format_ts(world.clock.now()))
            for action, payload in messages:
                await rogue.send_call(action, payload)
                outcomes["spoof_frames_sent"] += 1
        finally:
            if fault.spoofer == "unregistered":
                await rogue.stop()
        outcomes["spoofs"] += 1
        outcomes["spoofs_applied"] += spoof_applied(app, victim.cp_id, tx, claimed)
    return fault.count


def _confirmed(app: App) -> list[BookingRecord]:
    with app.store.reading() as tx:
        return [b for b in tx.bookings.all() if b.status is BookingStatus.CONFIRMED]


async def racing_cancels(app: App, world: World, fault: Fault) -> int:
    """The driver and the host cancel the same booking at the same instant (two HTTP requests at
    once), for each of the `count` oldest confirmed bookings in turn: exactly one may win, the other
    is told 409, and the hold is closed once (a fee or a release)."""
    world.stats.faults_fired += 1
    outcomes = world.stats.outcomes_of_faults
    await _wait_for(world, lambda: len(_confirmed(app)) >= fault.count, until=world.window_end)
    for b in _confirmed(app)[: fault.count]:
        driver, host = world.drivers[b.driver_id], world.hosts[b.host_id]
        await asyncio.gather(driver.fresh(), host.fresh())  # so neither logs in on the way
        path = f"/bookings/{b.booking_id}/cancel"
        answers = sorted(
            r.status_code for r in await asyncio.gather(*(a.request("POST", path) for a in (driver, host)))
        )
        outcomes["racing_cancels"] += 1
        if answers == [200, 409]:
            outcomes["racing_cancels_one_won"] += 1
        elif answers == [200, 200]:
            outcomes["racing_cancels_both_won"] += 1
        else:
            log.info("racing cancels of booking %s answered %s", b.booking_id, answers)
            outcomes["racing_cancels_other"] += 1
        with app.store.reading() as tx:
            closing = [
                i for i in tx.outbox.all() if i.booking_id == b.booking_id and i.step in (FEE, RELEASE)
            ]
        outcomes["racing_cancels_closed_twice"] += len(closing) > 1
    return fault.count


def _quiet(app: App) -> bool:
    """No session charging and no payment step waiting: every host's earnings are in the ledger."""
    with app.store.reading() as tx:
        charging = any(s.status is SessionStatus.CHARGING for s in tx.sessions.all())
        return not charging and not tx.outbox.all(PENDING)


async def _admin(app: App, world: World) -> ApiSession:
    """The operator's app, signed in (admins are made on the command line, never through the API)."""
    if world.admin is None:
        email, password = "ops@operators.example", secrets.token_urlsafe(12)
        await asyncio.to_thread(app.auth.add_admin, email, password)
        world.admin = ApiSession(world.http, world.clock, email, password)
    await world.admin.fresh()
    return world.admin


async def racing_payouts(app: App, world: World, fault: Fault) -> int:
    """Every host's KYC is verified; once no session is charging and no payment step waits, the
    operator asks for host payouts `count` times at once. Each host must be paid what it is owed,
    by exactly one of the requests."""
    world.stats.faults_fired += 1
    outcomes = world.stats.outcomes_of_faults
    admin = await _admin(app, world)
    for host_id in sorted(world.hosts):
        r = await admin.request("PUT", f"/admin/hosts/{host_id}/kyc", json={"status": "verified"})
        if r.status_code != 200:
            world.stats.errors.append(f"verifying host {host_id} answered {r.status_code}: {r.text[:200]}")
    await _wait_for(world, lambda: _quiet(app), until=None)
    with app.store.reading() as tx:
        balances = ledger.posted_balances(tx.ledger.entries())
    owed = {h: -balances.get(ledger.host_payable(h), 0) for h in world.hosts}
    answers = await asyncio.gather(*(admin.request("POST", "/admin/payouts") for _ in range(fault.count)))
    paid: Counter[int] = Counter()
    times_paid: Counter[int] = Counter()
    for r in answers:
        if r.status_code != 200:
            log.info("a racing payout request answered %s: %s", r.status_code, r.text[:200])
            continue
        outcomes["payout_requests_ok"] += 1
        for host, pence in r.json()["paid"].items():
            paid[int(host)] += int(pence)
            times_paid[int(host)] += 1
    outcomes["payout_requests"] += fault.count
    outcomes["hosts_paid"] += len(times_paid)
    outcomes["hosts_paid_twice"] += sum(1 for n in times_paid.values() if n > 1)
    outcomes["payouts_off_pence"] += sum(abs(paid[h] - max(0, owed[h])) for h in owed)
    return fault.count


def _processes(world: World, action: str) -> BackendProcesses:
    if world.backend is None:
        raise RuntimeError(f"{action} needs the backend running as processes")
    return world.backend


async def backend_crash(app: App, world: World, fault: Fault) -> int:
    """Every backend process is killed (kill -9: nothing written, nothing closed) and, `duration_s`
    later, started again on the same database. Chargers keep charging, queue what they cannot send
    and reconnect; what was committed survives, what was in flight is recovered by the new process.
    With `failpoint`, the processes are not killed from outside: each exits when it next reaches
    that boundary of the money path (if it does before the run's window ends)."""
    backend = _processes(world, fault.action)
    world.stats.faults_fired += 1
    if fault.failpoint is None:
        killed = backend.up()
        for index in killed:
            backend.crash(index)
    else:
        killed = await _crashed_at(backend, world, fault.failpoint)
    await sleep_sim(world.clock, fault.duration_s)
    for index in killed:
        await backend.restart(index)
    return len(killed)


async def _crashed_at(backend: BackendProcesses, world: World, failpoint: str) -> list[int]:
    # Waits for a process to end on its own, not for fewer to be up than when armed: another fault
    # may restart or kill one meanwhile, and the failpoint must not stay armed for every process.
    backend.arm(failpoint)
    try:
        await _wait_for(world, lambda: bool(backend.ended_on_their_own()), until=world.window_end)
    finally:
        backend.disarm()
    died = backend.exited()
    if not died:
        world.stats.outcomes_of_faults["failpoints_not_reached"] += 1
    return died


async def node_crash(app: App, world: World, fault: Fault) -> int:
    """`count` of the processes behind the balancer are killed (the last ones up first); their
    chargers reconnect through the balancer to the others. `duration_s` > 0: started again after."""
    backend = _processes(world, fault.action)
    world.stats.faults_fired += 1
    up = backend.up()
    killed = up[max(0, len(up) - fault.count) :]  # not up[-count:]: a count of 0 would take them all
    for index in killed:
        backend.crash(index)
    if fault.duration_s > 0:
        await sleep_sim(world.clock, fault.duration_s)
        for index in killed:
            await backend.restart(index)
    return len(killed)


async def node_restart(app: App, world: World, fault: Fault) -> int:
    """Every process that is down is started again (a supervisor's restart)."""
    backend = _processes(world, fault.action)
    world.stats.faults_fired += 1
    down = [n.index for n in backend.nodes if not n.running]
    for index in down:
        await backend.restart(index)
    return len(down)


def backend_outcomes(backend: BackendProcesses) -> dict[str, int]:
    """What the process faults did, for the run summary (`fault_outcomes.<name>`)."""
    return {
        "backend_processes_killed": backend.crashes,
        "backend_processes_restarted": backend.restarts,
        "backend_failpoint_exits": backend.failpoint_exits,
    }


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
    "provider_slow": provider_slow,
    "spoofed_charger": spoofed_charger,
    "racing_cancels": racing_cancels,
    "racing_payouts": racing_payouts,
    "backend_crash": backend_crash,
    "node_crash": node_crash,
    "node_restart": node_restart,
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
