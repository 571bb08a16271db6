"""The live engine's fault executor: applies what the catalogue (`simulators.faults`) decides to
virtual chargers over real sockets, to the backend (its payment gateway in process, or its
processes) and to the apps' requests over HTTP."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import TypeVar

from websockets.exceptions import WebSocketException

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App
from chargeshare.domain import ledger
from chargeshare.domain.session import SessionStatus
from chargeshare.ocpp.timestamps import format_ts
from chargeshare.services.clock import Clock
from chargeshare.services.records import BookingRecord
from chargeshare.services.settlement import FEE, PENDING, RELEASE
from simulators.backend_nodes import BackendProcesses
from simulators.charger import VirtualCharger
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
    plan,
    running_transaction,
    spoofer,
)
from simulators.live_driver import World, admin_session, seconds_left
from simulators.pacing import sleep_sim
from simulators.spoofing import spoof_applied, spoof_messages
from simulators.wire_faults import ALL_COMMANDS

log = logging.getLogger(__name__)


# A fault that needs victims waits for them a while (bookings a loaded machine is still placing).
VICTIMS_WAIT_REAL_S = 30.0

ChargerAction = Callable[[VirtualCharger, Fault], Awaitable[None]]
WorldAction = Callable[[App, World, Fault, FaultRecord], Awaitable[int]]
T = TypeVar("T", bound=Target)


async def host_cancels(app: App, world: World, fault: Fault, fired: FaultRecord) -> int:
    """Hosts cancel the `count` oldest bookings that have not started, through the public API. Fewer
    than `count` confirmed yet: wait for more (bounded), as the drivers' requests may still be in
    flight on a loaded machine; their travel starts only once they are booked, so nobody has arrived."""
    give_up = asyncio.get_running_loop().time() + VICTIMS_WAIT_REAL_S
    while True:
        with app.store.reading() as tx:
            due = confirmed(tx.bookings.all(), fault.count)
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
    world.stats.outcomes_of_faults[fault.action] += done
    return done


async def payment_outage(app: App, world: World, fault: Fault, fired: FaultRecord) -> int:
    """The payment provider is unreachable for `duration_s`; charging must carry on regardless."""
    gateway = app.gateway
    if not isinstance(gateway, SimulatedGateway):
        raise RuntimeError("payment_outage needs the simulated payment gateway")
    gateway.down = True
    try:
        await sleep_sim(world.clock, fault.duration_s)
    finally:
        gateway.down = False
    return 1


async def _disconnect(vc: VirtualCharger, fault: Fault) -> None:
    """The link is lost for `duration_s`; the charger keeps charging offline, queues and replays."""
    await vc.disconnect_for(fault.duration_s)


async def _reboot(vc: VirtualCharger, fault: Fault) -> None:
    """A power-cycle mid-transaction, with or without losing the message queue."""
    await vc.reboot(lose_queue=fault.lose_queue)


async def _silence(vc: VirtualCharger, fault: Fault) -> None:
    """Hung for `duration_s`: socket open, nothing said; only the heartbeat watchdog notices."""
    await vc.silence_for(fault.duration_s)


async def _duplicate_frames(vc: VirtualCharger, fault: Fault) -> None:
    """From now on every transaction frame goes twice (a flaky network)."""
    vc.duplicate_sends = True


async def _clock_skew(vc: VirtualCharger, fault: Fault) -> None:
    """The charger's clock is `skew_s` off: its timestamps are wrong, our bookings must not be."""
    vc.clock_skew_s = fault.skew_s


async def _clock_jump(vc: VirtualCharger, fault: Fault) -> None:
    """The charger's clock moves `skew_s` from where it is (back, below 0): what it reports next is
    stamped before what it reported last."""
    vc.clock_skew_s += fault.skew_s


async def _malformed_frames(vc: VirtualCharger, fault: Fault) -> None:
    """`frames` frames that break OCPP; the CSMS answers CALLERROR and carries on."""
    await vc.send_malformed(fault.frames)


def _for_a_while(on: Callable[[VirtualCharger, Fault], None]) -> ChargerAction:
    """A wire fault switched on; with `duration_s`, every wire fault of the charger off again after."""

    async def apply(vc: VirtualCharger, fault: Fault) -> None:
        on(vc, fault)
        if fault.duration_s > 0:
            await sleep_sim(vc.clock, fault.duration_s)
            vc.wire.clear()

    return apply


def _drop(vc: VirtualCharger, fault: Fault) -> None:
    vc.wire.drop_rate = fault.percent / 100  # transaction messages are retried


def _delay(vc: VirtualCharger, fault: Fault) -> None:
    vc.wire.delay_s = fault.delay_s  # every CSMS command handled and answered this late


def _reject(vc: VirtualCharger, fault: Fault) -> None:
    vc.wire.reject = frozenset(fault.commands) if fault.commands else frozenset({ALL_COMMANDS})


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


async def provider_slow(app: App, world: World, fault: Fault, fired: FaultRecord) -> int:
    """For `duration_s` every payment provider call takes `latency_s` simulated seconds to answer
    (in the server's worker threads); chargers, bookings and stops must carry on meanwhile."""
    gateway = _gateway(app, fault.action)
    gateway.clock_latency_s = fault.latency_s
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


async def spoofed_charger(app: App, world: World, fault: Fault, fired: FaultRecord) -> int:
    """`count` times: once a charger (of `protocol` if given) runs a transaction, another charger
    names it with a reading no car could draw and a stop (see `simulators.spoofing`). The spoofer
    is another charger of the fleet speaking the victim's version, or an unregistered one."""
    outcomes = world.stats.outcomes_of_faults
    spoofed: set[str] = set()
    fleet = world.chargers.values()
    for n in range(1, fault.count + 1):
        await _wait_for(
            world,
            lambda: running_transaction(fleet, fault.protocol, spoofed) is not None,
            until=world.window_end,
        )
        found = running_transaction(fleet, fault.protocol, spoofed)
        if found is None:
            outcomes["spoofs_without_victim"] += 1
            continue
        victim, connector, tx = found
        spoofed.add(victim.cp_id)
        fired.chargers.append(victim.cp_id)
        if fault.spoofer == "unregistered":
            rogue = await _unregistered(victim, n)
            if rogue is None:
                outcomes["spoof_links_refused"] += 1
                continue
        else:
            other = spoofer(fleet, victim)
            if other is None:
                outcomes["spoofs_without_spoofer"] += 1
                continue
            rogue = other
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


def _confirmed(app: App, count: int) -> list[BookingRecord]:
    with app.store.reading() as tx:
        return confirmed(tx.bookings.all(), count)


async def racing_cancels(app: App, world: World, fault: Fault, fired: FaultRecord) -> int:
    """The driver and the host cancel the same booking at the same instant (two HTTP requests at
    once), for each of the `count` oldest confirmed bookings in turn: exactly one may win, the other
    is told 409, and the hold is closed once (a fee or a release)."""
    outcomes = world.stats.outcomes_of_faults
    await _wait_for(world, lambda: len(_confirmed(app, fault.count)) >= fault.count, until=world.window_end)
    for b in _confirmed(app, fault.count):
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


async def racing_payouts(app: App, world: World, fault: Fault, fired: FaultRecord) -> int:
    """Every host's KYC is verified; once no session is charging and no payment step waits, the
    operator asks for host payouts `count` times at once. Each host must be paid what it is owed,
    by exactly one of the requests."""
    outcomes = world.stats.outcomes_of_faults
    admin = await admin_session(app, world)
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


async def backend_crash(app: App, world: World, fault: Fault, fired: FaultRecord) -> int:
    """Every backend process is killed (kill -9: nothing written, nothing closed) and, `duration_s`
    later, started again on the same database. Chargers keep charging, queue what they cannot send
    and reconnect; what was committed survives, what was in flight is recovered by the new process.
    With `failpoint`, the processes are not killed from outside: each exits when it next reaches
    that boundary of the money path (if it does before the run's window ends)."""
    backend = _processes(world, fault.action)
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


async def node_crash(app: App, world: World, fault: Fault, fired: FaultRecord) -> int:
    """`count` of the processes behind the balancer are killed (the last ones up first); their
    chargers reconnect through the balancer to the others. `duration_s` > 0: started again after."""
    backend = _processes(world, fault.action)
    up = backend.up()
    killed = up[max(0, len(up) - fault.count) :]  # not up[-count:]: a count of 0 would take them all
    for index in killed:
        backend.crash(index)
    if fault.duration_s > 0:
        await sleep_sim(world.clock, fault.duration_s)
        for index in killed:
            await backend.restart(index)
    return len(killed)


async def node_restart(app: App, world: World, fault: Fault, fired: FaultRecord) -> int:
    """Every process that is down is started again (a supervisor's restart)."""
    backend = _processes(world, fault.action)
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


CHARGER_ACTIONS: dict[str, ChargerAction] = {
    "disconnect": _disconnect,
    "reboot": _reboot,
    "silence": _silence,
    "duplicate_frames": _duplicate_frames,
    "clock_skew": _clock_skew,
    "clock_jump": _clock_jump,
    "drop_frames": _for_a_while(_drop),
    "delay_responses": _for_a_while(_delay),
    "reject_commands": _for_a_while(_reject),
    "malformed_frames": _malformed_frames,
}
WORLD_ACTIONS: dict[str, WorldAction] = {
    "host_cancels": host_cancels,
    "payment_outage": payment_outage,
    "provider_slow": provider_slow,
    "spoofed_charger": spoofed_charger,
    "racing_cancels": racing_cancels,
    "racing_payouts": racing_payouts,
    "backend_crash": backend_crash,
    "node_crash": node_crash,
    "node_restart": node_restart,
}


async def run_faults(app: App, world: World, faults: tuple[Fault, ...]) -> None:
    """Play the scenario's fault timeline on the run's world."""

    async def apply(p: Planned, fired: FaultRecord, chosen: list[VirtualCharger]) -> None:
        if CATALOGUE[p.fault.action].scope is Scope.CHARGERS:
            act = CHARGER_ACTIONS[p.fault.action]
            await asyncio.gather(*(act(vc, p.fault) for vc in chosen))
        else:
            await WORLD_ACTIONS[p.fault.action](app, world, p.fault, fired)

    await play(world.clock, faults, lambda: world.chargers.values(), apply, world.stats)


async def play(
    clock: Clock,
    faults: tuple[Fault, ...],
    fleet: Callable[[], Iterable[T]],
    apply: Callable[[Planned, FaultRecord, list[T]], Awaitable[None]],
    stats: DriverStats,
) -> None:
    """Fire each planned fault at its time on `clock`, whatever is still lasting then, on the
    chargers the catalogue picks from `fleet`; each fired fault is recorded in `stats.fault_log`."""
    origin = clock.now()

    def elapsed() -> float:
        return (clock.now() - origin).total_seconds()

    async def start(p: Planned) -> None:
        await sleep_sim(clock, p.start_s - elapsed())
        fired, chosen = fire(p, elapsed(), fleet())
        stats.fault_log.append(fired)
        stats.faults_fired += 1
        await apply(p, fired, chosen)

    tasks = [asyncio.create_task(start(p)) for p in plan(faults)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
