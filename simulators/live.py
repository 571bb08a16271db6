"""Live simulation: the backend in-process behind a real loopback server, a fleet of virtual chargers
over real WebSockets, scripted drivers over real HTTP, all on a scaled clock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from chargeshare.adapters.shared_clock import PublishedClock
from chargeshare.bootstrap import MEMORY_DATABASE_URL, App, Config, build
from chargeshare.entrypoints.api import create_api
from chargeshare.entrypoints.loopback import LoopbackServer
from chargeshare.entrypoints.ocpp_server import ChargerRegistry
from chargeshare.services.charging import CHARGER_OFFLINE, STOP_LOST
from chargeshare.services.clock import ScaledClock
from chargeshare.services.owed_commands import commands_owed
from chargeshare.services.rate_limits import ApiLimits
from chargeshare.services.rules import MarketplaceRules
from simulators.backend_nodes import MAX_PROCESSES, START_WITHIN_S, BackendFailed, BackendProcesses
from simulators.charger import VirtualCharger
from simulators.driver import RECEIPT_CHECK_EVERY_S, RECEIPT_CHECKS, DriverStats
from simulators.faults import Fault
from simulators.fleet import CITIES, DriverBehaviour, FleetShape, make_chargers, make_drivers, price_hosts
from simulators.fleet_hub import HubShape
from simulators.grid_metrics import GridMeter, announce_flex_events, lay_out_grid
from simulators.house_load import HouseProfile
from simulators.http_retry import RetryWhileAway
from simulators.live_driver import ApiSession, World, run_driver, sign_up_driver
from simulators.live_faults import backend_outcomes, provider_outcomes, run_faults, wire_outcomes
from simulators.live_fleet_hub import HubCharger, book_hub, run_hub, settle_hub
from simulators.live_house_meter import run_house_meter
from simulators.live_v2g import run_guests
from simulators.pacing import sleep_sim
from simulators.report import RunReport, summarise
from simulators.timeline import take_sample
from simulators.trace import ASGIApp, TraceRecorder
from simulators.v2g import V2gShape

log = logging.getLogger(__name__)

DEFAULT_START = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)
HOSTS_PER_CHARGER = 1


@dataclass(frozen=True)
class LiveParams:
    chargers: int = 20
    drivers: int = 50
    duration_s: int = 2 * 3600
    seed: int = 7
    speed: float = 240.0  # simulated seconds per real second
    city: str = "bristol"
    database_url: str = MEMORY_DATABASE_URL
    locks: bool = True
    start: datetime = DEFAULT_START
    fleet: FleetShape = field(default_factory=FleetShape)
    behaviour: DriverBehaviour = field(default_factory=DriverBehaviour)
    faults: tuple[Fault, ...] = ()
    # Development mode: unregistered charge point ids may connect (nothing they say is stored).
    allow_unknown_chargers: bool = False
    # 0: the backend in this process; N: N `chargeshare serve` processes on the database (several
    # behind HAProxy), as a crash or a cluster needs. A backend crash fault asks for one by itself.
    processes: int = 0
    redis_url: str | None = None  # what the processes share (needed by more than one)
    fleet_hub: HubShape | None = None  # a business account's night blocks on the first chargers
    v2g: V2gShape | None = None  # V2G guests on the first chargers (OCPP 2.1)


# Faults that kill backend processes, and faults that reach into the backend's own memory.
PROCESS_FAULTS = frozenset({"backend_crash", "node_crash", "node_restart"})
IN_PROCESS_FAULTS = frozenset({"payment_outage", "provider_slow"})


def backend_processes(params: LiveParams) -> int:
    """How many `serve` processes the run starts (0: the backend runs in this process)."""
    if params.processes:
        return params.processes
    return 1 if any(f.action in PROCESS_FAULTS for f in params.faults) else 0


def problems(params: LiveParams, *, trace: bool = False) -> list[str]:
    """What makes these parameters impossible to run, said so that the user can change it."""
    out = []
    processes = backend_processes(params)
    if not 0 <= params.processes <= MAX_PROCESSES:
        out.append(f"processes must be from 0 (in this process) to {MAX_PROCESSES}, got {params.processes}")
    if processes:
        for f in params.faults:
            if f.action in IN_PROCESS_FAULTS:
                out.append(
                    f"fault {f.action} reaches into the backend's memory: it needs the backend in process"
                )
        if trace:
            out.append("a trace records the backend in process: it cannot follow backend processes")
    else:
        for f in params.faults:
            if f.action in PROCESS_FAULTS:
                out.append(f"fault {f.action} needs backend processes")  # not reached: they ask for one
    if processes > 1 and params.redis_url is None:
        out.append(f"{processes} backend processes share commands and limits through Redis: give a Redis URL")
    if params.fleet_hub is not None and params.fleet_hub.chargers > params.chargers:
        out.append(
            f"fleet_hub asks for {params.fleet_hub.chargers} chargers, but the fleet has {params.chargers}"
        )
    for f in params.faults:
        if f.action == "node_crash" and f.count >= max(processes, 1):
            out.append(
                f"node_crash of {f.count} process(es) leaves none of {processes} to serve; use backend_crash"
            )
    return out


Progress = Callable[[float, dict[str, Any]], None]


async def run_live(
    params: LiveParams, progress: Progress | None = None, *, trace: Path | None = None
) -> RunReport:
    """`progress` gets a sample of the backend's state every simulated minute or so (and once more
    after the wind-down, with "final"); `trace` records every frame and API call as JSONL."""
    if params.city not in CITIES:
        raise ValueError(f"unknown city {params.city!r}; choose one of {', '.join(CITIES)}")
    wrong = problems(params, trace=trace is not None)
    if wrong:
        raise ValueError("; ".join(wrong))
    processes = backend_processes(params)
    if not processes:
        # Paused until the run's loop first keeps it up: its setup is no simulated time.
        scaled = ScaledClock(params.start, params.speed, paused=True)
        return await _run_live(params, scaled, None, progress, trace)
    with tempfile.TemporaryDirectory(prefix="chargeshare-backend-") as directory:
        workdir = Path(directory)
        if params.database_url == MEMORY_DATABASE_URL:
            # Processes that crash need a database outside themselves: a file of the run's own.
            params = replace(params, database_url=f"sqlite:///{workdir / 'chargeshare.db'}")
        clock = PublishedClock(workdir / "clock", params.start, params.speed, paused=True)
        try:
            return await _run_live(params, clock, (workdir, processes), progress, trace)
        finally:
            clock.close()


async def _run_live(
    params: LiveParams,
    clock: ScaledClock,
    served_by: tuple[Path, int] | None,
    progress: Progress | None,
    trace: Path | None,
) -> RunReport:
    rng = random.Random(params.seed)
    # Throw-away accounts: the cheap password hash, so signing up a fleet of drivers costs no seconds.
    # They all sign up from one address, so without the sign-up limit; and every simulated user may
    # wait for a turn to hash (a fast hash is a millisecond), since a login refused as busy would
    # make the run depend on how loaded the machine is.
    # Allow a booking request up to 5 real seconds in flight (a loaded machine) before its start
    # counts as in the past; at full speed that is many simulated minutes.
    # Likewise what waits on real work in flight (a provider call, a stop on its way, a worker's
    # claim): a few real seconds of it, however fast the clock runs.
    in_flight = round(5 * params.speed)
    guests = 0 if params.v2g is None else params.v2g.guests
    defaults = MarketplaceRules()
    rules = replace(
        defaults,
        past_start_tolerance_s=max(60, in_flight),
        # A charger's queue replayed as it connects takes real seconds too.
        replay_window_s=max(defaults.replay_window_s, in_flight),
        hold_placement_timeout_s=max(defaults.hold_placement_timeout_s, 6 * in_flight),
        payment_lease_s=max(defaults.payment_lease_s, 6 * in_flight),
        # A stop follows its connector's Available within moments, or a replay, of real time.
        lost_stop_grace_s=max(defaults.lost_stop_grace_s, in_flight),
        command_resend_after_s=max(defaults.command_resend_after_s, in_flight),
    )
    config = Config(
        database_url=params.database_url,
        redis_url=params.redis_url if served_by is not None else None,
        locks_enabled=params.locks,
        password_hash="fast",
        hash_queue=params.drivers + guests + max(1, params.chargers),  # every driver, guest and host
        limits=replace(ApiLimits(), signup_per_address=None),
        rules=rules,
        allow_unknown_chargers=params.allow_unknown_chargers,
        grid_seed=params.seed,
    )
    app = build(config, clock=clock)
    wall_start = time.monotonic()
    recorder = None
    try:
        if trace is not None:
            recorder = TraceRecorder.open(trace, app, {"seed": params.seed, "params": params_dict(params)})
        pacing = asyncio.create_task(keep_clock_with_loop(clock))
        try:
            stats = await _run(app, params, rng, clock, progress, recorder, served_by)
            # Now, while it is paced: afterwards the clock stands still, and that is no waiting.
            held_s = clock.held_s
        finally:
            pacing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pacing
        report = summarise(app, params_dict(params), stats, wall_s=time.monotonic() - wall_start)
        report.summary["sessions_by_protocol"] = sessions_by_protocol(app)
        report.summary["fault_outcomes"] = dict(sorted(stats.outcomes_of_faults.items()))
        report = replace(report, clock_held_s=held_s)
        return report
    finally:
        if recorder is not None:
            recorder.close()
        app.close()


# How often the loop lets the clock go on, and how far past that (real seconds): simulated time stops
# when the loop gets no turn for longer (a loaded machine), so the backend never falls behind it.
PACE_EVERY_S = 0.02
PACE_SLACK_S = 0.1
# Real seconds a run may take past its window (scaled) and the time its clock stood still.
OVERRUN_MARGIN_S = 30.0
# Real seconds, beyond two rounds of owed commands, for a wind-down's cancellations to be answered.
CANCEL_PATIENCE_S = 10.0
CANCEL_POLL_S = 0.05


async def keep_clock_with_loop(clock: ScaledClock) -> None:
    while True:
        clock.keep_up(PACE_SLACK_S)
        await asyncio.sleep(PACE_EVERY_S)


def sessions_by_protocol(app: App) -> dict[str, int]:
    """Sessions the backend recorded, by the OCPP version their charger spoke ("ocpp16", "ocpp201",
    "ocpp21")."""
    with app.store.transaction() as tx:
        version_of = {
            c.connector_id: (v.ocpp_version or "unknown") for v in tx.chargers.all() for c in v.connectors
        }
        sessions = tx.sessions.all()
    counts = Counter("ocpp" + version_of.get(s.connector_id, "unknown").replace(".", "") for s in sessions)
    return dict(sorted(counts.items()))


def _served(
    app: App, recorder: TraceRecorder | None, host_logins: dict[int, tuple[str, str]] | None = None
) -> ASGIApp:
    registry = ChargerRegistry(app)
    api: ASGIApp = create_api(app, registry)
    if recorder is None:
        return api
    recorder.snapshot_fleet(host_logins or {})
    recorder.attach(registry)
    return recorder.wrap(api)


@dataclass
class Backend:
    """Where chargers and apps reach the backend; `processes` when it runs as `serve` processes."""

    http_url: str
    ocpp_url: str
    processes: BackendProcesses | None = None


async def _reservations_cancelled(app: App, fleet: dict[str, VirtualCharger], patience_s: float) -> None:
    """Wait until no connected charger holds the reservation of a booking the wind-down ended: its
    CancelReservation goes out at once from this process, or from a backend process's round of
    owed commands. Leaving sooner, the charger would keep it; past `patience_s` the invariants say."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience_s
    while loop.time() < deadline:
        owed = await asyncio.to_thread(commands_owed, app.store, app.clock.now())
        linked = sorted(
            {o.charge_point_id for o in owed if o.kind == "reservation" and _linked(fleet, o.charge_point_id)}
        )
        held = [
            cp_id for cp_id in linked if await asyncio.to_thread(app.bookings.cancellations_unanswered, cp_id)
        ]
        if not held:
            return
        await asyncio.sleep(CANCEL_POLL_S)


def _linked(fleet: dict[str, VirtualCharger], cp_id: str) -> bool:
    charger = fleet.get(cp_id)
    return charger is not None and charger.connected


@contextlib.asynccontextmanager
async def _backend(
    app: App,
    params: LiveParams,
    clock: ScaledClock,
    recorder: TraceRecorder | None,
    logins: dict[int, tuple[str, str]],
    served_by: tuple[Path, int] | None,
) -> AsyncIterator[Backend]:
    if served_by is None:
        async with LoopbackServer(_served(app, recorder, logins)) as server:
            yield Backend(f"http://127.0.0.1:{server.port}", f"ws://127.0.0.1:{server.port}/ocpp")
        return
    assert isinstance(clock, PublishedClock)
    workdir, processes = served_by
    # The processes do their own housekeeping: this process's view of the store only seeds the world
    # and reads it. Last-seen stamps it would write are none (it serves no charger).
    nodes = BackendProcesses(
        app.config, clock, workdir, processes, allow_unknown_chargers=params.allow_unknown_chargers
    )
    try:
        await nodes.start()
        yield Backend(nodes.http_url, nodes.ocpp_url, nodes)
    except BackendFailed:
        raise
    except BaseException:
        log.warning("backend processes' logs:\n%s", nodes.logs())
        raise
    finally:
        await asyncio.to_thread(nodes.stop)


def _told_hosts(app: App, wind_down_from: datetime) -> tuple[int, int]:
    """Chargers that went offline before the wind-down, and sessions closed without their stop, as
    their hosts were told (durably, whichever process saw it)."""
    with app.store.reading() as tx:
        told = tx.notifications.all()
    offline = sum(1 for n in told if n["kind"] == CHARGER_OFFLINE and _at(n["created_at"]) < wind_down_from)
    lost = sum(1 for n in told if n["kind"] == STOP_LOST)
    return offline, lost


def _at(value: object) -> datetime:
    assert isinstance(value, datetime)
    return value


def params_dict(p: LiveParams) -> dict[str, Any]:
    return {
        "engine": "live",
        "chargers": p.chargers,
        "drivers": p.drivers,
        "duration_s": p.duration_s,
        "seed": p.seed,
        "speed": p.speed,
        "city": p.city,
        "start": p.start.isoformat(),
        "locks": p.locks,
        "protocols": list(p.fleet.protocols),
        "pricing": p.fleet.pricing,
        "drivers_max_price_per_kwh": None if p.behaviour.max_price is None else list(p.behaviour.max_price),
        "allow_unknown_chargers": p.allow_unknown_chargers,
        "processes": backend_processes(p),
        "faults": [
            {"at_s": f.at_s, "action": f.action, "count": f.count, "duration_s": f.duration_s}
            for f in p.faults
        ],
        **({} if p.fleet_hub is None else {"fleet_hub": p.fleet_hub.as_dict()}),
        **({} if p.v2g is None else {"v2g": p.v2g.as_dict()}),
    }


async def _run(
    app: App,
    params: LiveParams,
    rng: random.Random,
    clock: ScaledClock,
    progress: Progress | None,
    recorder: TraceRecorder | None = None,
    served_by: tuple[Path, int] | None = None,
) -> DriverStats:
    centre = CITIES[params.city]
    host_logins = {
        f"host{i + 1}@hosts.example": secrets.token_urlsafe(12)  # not from `rng`: the fleet stays the same
        for i in range(max(1, params.chargers))
    }
    host_ids = [
        app.auth.register_host(email, pw, f"Host {i + 1}").host
        for i, (email, pw) in enumerate(host_logins.items())
    ]
    specs = make_chargers(rng, params.chargers, centre, host_ids, params.fleet)
    passwords = {s.charge_point_id: f"pw-{s.charge_point_id}-{rng.getrandbits(64):016x}" for s in specs}
    views = [app.marketplace.add_charger(spec, password=passwords[spec.charge_point_id]) for spec in specs]
    for view in views[: params.fleet.dsr_chargers]:  # before they boot: they hear it then
        app.smart.set_demand_side_response(view.charger_id, True)
    price_hosts(app.pricing.set_settings, specs, params.fleet)
    grid = params.fleet.grid
    # Before the chargers connect: each is sent its limits as it boots.
    layout = None if grid is None else lay_out_grid(app, grid, views, params.seed)
    plans = make_drivers(rng, params.drivers, centre, params.duration_s, params.behaviour)
    stats = DriverStats(bookings_answered=set())
    logins = dict(zip(host_ids, host_logins.items(), strict=True))
    async with _backend(app, params, clock, recorder, logins, served_by) as backend:
        fleet = {
            s.charge_point_id: VirtualCharger(
                s.charge_point_id,
                backend.ocpp_url,
                clock,
                [c.max_power_w for c in s.connectors],
                protocol=params.fleet.protocol_of(i),
                password=passwords[s.charge_point_id],
                seed=params.seed,
                smart_charge_point=params.fleet.smart_charge_points,
            )
            for i, s in enumerate(specs)
        }
        for charger in list(fleet.values())[: params.fleet.amps_only_chargers]:
            charger.take_amps_only()
        for charger in fleet.values():
            charger.wire_phases(params.fleet.phases, said=params.fleet.phases_said)
            charger.switch_phases(params.fleet.phase_switching)
        await asyncio.wait_for(asyncio.gather(*(c.start() for c in fleet.values())), timeout=30)
        transport = None if backend.processes is None else RetryWhileAway(START_WITHIN_S, clock=clock)
        async with httpx.AsyncClient(base_url=backend.http_url, timeout=30, transport=transport) as http:
            sessions = [await sign_up_driver(http, clock, plan) for plan in plans]
            driver_ids = [driver_id for driver_id, _ in sessions]
            window_end = clock.now() + timedelta(seconds=params.duration_s)
            window_start = window_end - timedelta(seconds=params.duration_s)
            meter = None
            if grid is not None:
                # The window begins past the fleet's setup: the events are timed from there.
                assert layout is not None, "laid out with the grid"
                for event in announce_flex_events(app, grid, layout.feeders, window_start):
                    if recorder is not None:  # made through the services: no API call shows it
                        recorder.flex_event(event)
                meter = stats.grid = _grid_meter(app, fleet, window_start, layout.houses)
            if recorder is not None:
                # Where the run's window and its fault timeline begin, past the fleet's setup: a
                # replay's plots mark the window's end and the faults from here.
                recorder.op("window", duration_s=params.duration_s)
            world = World(
                http,
                fleet,
                clock,
                window_end,
                stats,
                drivers=dict(sessions),
                hosts={
                    h: ApiSession(http, clock, email, pw)
                    for h, (email, pw) in zip(host_ids, host_logins.items(), strict=True)
                },
                receipt_patience_s=(
                    app.config.rules.lost_stop_grace_s + RECEIPT_CHECKS * RECEIPT_CHECK_EVERY_S
                ),
                backend=backend.processes,
                on_operator=None if recorder is None else recorder.operator,
            )
            hub = None
            if params.fleet_hub is not None:
                # Before the drivers set out: they are refused where a block holds the connector.
                on = [HubCharger(v.charger_id, v.charge_point_id, v.host_id) for v in views]
                hub = await book_hub(app, world, params.fleet_hub, on, window_start, params.duration_s)
            tasks = [
                asyncio.create_task(run_driver(p, d, world)) for p, d in zip(plans, driver_ids, strict=True)
            ]
            watcher = asyncio.create_task(_report_progress(app, world, params, tasks, progress))
            sampler = asyncio.create_task(_sample_grid(clock, meter))
            house_meters = [
                asyncio.create_task(run_house_meter(world.hosts[host], site, house, stats.errors))
                for site, house, host in ([] if layout is None else layout.meters())
            ]
            faults = asyncio.create_task(run_faults(app, world, params.faults))
            others: dict[asyncio.Task[None], str] = {}  # V2G guests and a hub's vans, by what they are
            if params.v2g is not None:
                stats.v2g_registers = {}
                on_v2g = [(v.charger_id, v.charge_point_id) for v in views]
                guests = run_guests(world, params.v2g, on_v2g, window_start)
                others[asyncio.create_task(guests)] = "V2G guests"
            if params.fleet_hub is not None and hub is not None:
                vans = run_hub(world, params.fleet_hub, hub, params.seed)
                others[asyncio.create_task(vans)] = "hub's vans"
            # Drivers finish by the window's end, and so does the fault timeline; allow a margin for
            # the last stops to settle (plus however long the clock stood still for a busy machine).
            budget = clock.real_seconds(params.duration_s) + OVERRUN_MARGIN_S
            loop, began, held = asyncio.get_running_loop(), asyncio.get_running_loop().time(), clock.held_s
            pending: set[asyncio.Task[Any]] = {*tasks, faults, *others}
            while pending and loop.time() - began < budget + clock.held_s - held:
                _, pending = await asyncio.wait(pending, timeout=1)
            done = {t for t in tasks if t.done()}
            if pending:
                # Cut short (a process restarting when time ran out, say): what it never did must
                # not pass for a run that did everything.
                drivers_left = len(pending & set(tasks))
                stats.errors.append(
                    f"the run overran its time: {drivers_left} driver(s)"
                    + "".join(f" and the {what}" for t, what in others.items() if t in pending)
                    + f"{' and the fault timeline' if faults in pending else ''} cut short"
                )
            for t in pending - {faults}:
                t.cancel()
            for t, what in others.items():
                if t.done() and not t.cancelled() and t.exception() is not None:
                    stats.errors.append(f"{what} failed: {t.exception()!r}")
            if params.fleet_hub is not None and hub is not None:
                # Every month over is invoiced and paid while the apps still reach the backend.
                await settle_hub(app, world, params.fleet_hub, hub, window_start)
            for t in done:
                if t.exception() is not None:
                    stats.errors.append(f"driver task failed: {t.exception()!r}")
            for helper in (watcher, faults, sampler, *house_meters):
                if helper.done() and not helper.cancelled() and helper.exception() is not None:
                    stats.errors.append(f"{helper.get_coro()!r} failed: {helper.exception()!r}")
                helper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(watcher, faults, sampler, *house_meters)
        # Faults healed, anything still plugged in unplugged, queues flushed; unused bookings released.
        # What happens from here (chargers leaving, say) is the wind-down's, not the run's.
        wind_down_from = min(window_end, clock.now())
        stats.wind_down_from = wind_down_from
        await asyncio.gather(*(c.settle_down() for c in fleet.values()))
        for charger in fleet.values():
            for no in charger.connectors:
                await charger.unplug(no)
        await asyncio.gather(*(c.settle_down() for c in fleet.values()))
        stats.charger_reconnects = sum(c.reconnects for c in fleet.values())
        stats.frames_left_queued = sum(len(c.queue) for c in fleet.values())
        stats.smart_gates = [g for c in fleet.values() for g in c.smart_gates]
        stats.outcomes_of_faults.update(wire_outcomes(fleet.values()))
        stats.outcomes_of_faults.update(provider_outcomes(app))
        if backend.processes is not None:
            for index in backend.processes.exited():  # none but at a fault's failpoint
                said = backend.processes.nodes[index].output(backend.processes.ended_runs[index])
                stats.errors.append(f"backend process {index} exited on its own:\n{said[-2000:]}")
            for index in sorted(backend.processes.clock.left_behind):
                stats.errors.append(
                    f"backend process {index} had no turn for {backend.processes.clock.patience_s:g} real"
                    " seconds (stopped?): simulated time went on without it"
                )
            stats.outcomes_of_faults.update(backend_outcomes(backend.processes))
            if transport is not None:
                stats.outcomes_of_faults["api_requests_retried"] += transport.retried
                stats.outcomes_of_faults["api_requests_lost"] += transport.lost
        if recorder is not None:
            recorder.op("expire_no_shows", grace_s=0)
        app.housekeeping.wind_down()
        patience_s = clock.real_seconds(2 * app.config.rules.command_resend_after_s) + CANCEL_PATIENCE_S
        await _reservations_cancelled(app, fleet, patience_s)
        await asyncio.gather(*(c.stop() for c in fleet.values()))
    stats.chargers_went_offline, stats.sessions_closed_without_stop = _told_hosts(app, wind_down_from)
    # Wind-down: what the payments outbox still holds, then what reconcile leaves behind.
    with app.store.transaction() as tx:
        stats.payments_backlog = len(tx.outbox.all("pending")) + len(tx.outbox.all("dead"))
    if recorder is not None:
        recorder.op("reconcile")
    app.settlement.reconcile()
    if progress is not None:
        info = {"drivers_done": len(plans), "charging": 0, "conflicts": stats.conflicts}
        final = take_sample(
            app,
            params.start,
            faults_fired=stats.faults_fired,
            drivers_done=len(plans),
            conflicts=stats.conflicts,
        )
        progress(params.duration_s, {**info, "sample": final, "final": True})
    return stats


# How often (simulated seconds) a live run samples its sites' and feeders' loads: well within one
# meter interval, since a live clock's samples drift past their marks and the stretch is measured.
GRID_SAMPLE_EVERY_S = 15


def _grid_meter(
    app: App, fleet: dict[str, VirtualCharger], window_start: datetime, houses: dict[int, HouseProfile]
) -> GridMeter:
    """The grid's loads, read from the virtual chargers' connectors as they draw."""
    with app.store.reading() as tx:
        by_connector = {
            (c.charge_point_id, k.connector_no): k.connector_id
            for c in tx.chargers.all()
            for k in c.connectors
        }
    interval = min((c.meter_interval_s for c in fleet.values()), default=60)

    def drawing() -> list[tuple[int, int, bool]]:
        return [
            (by_connector[(cp_id, no)], watts, held)
            for cp_id, charger in fleet.items()
            for no, watts, held in charger.drawing()
        ]

    return GridMeter(app, drawing, interval, window_start, houses)


async def _sample_grid(clock: ScaledClock, meter: GridMeter | None) -> None:
    if meter is None:
        return
    while True:
        meter.sample(clock.now())
        await sleep_sim(clock, GRID_SAMPLE_EVERY_S)


async def _report_progress(
    app: App, world: World, params: LiveParams, tasks: list[asyncio.Task[str]], progress: Progress | None
) -> None:
    if progress is None:
        return
    start = world.window_end - timedelta(seconds=params.duration_s)
    while True:
        elapsed = min(params.duration_s, (world.clock.now() - start).total_seconds())
        charging = sum(
            1
            for c in world.chargers.values()
            for x in c.connectors.values()
            if x.plugged is not None and x.plugged.transaction_id is not None
        )
        drivers_done = sum(t.done() for t in tasks)
        sample = take_sample(
            app,
            start,
            faults_fired=world.stats.faults_fired,
            drivers_done=drivers_done,
            conflicts=world.stats.conflicts,
        )
        progress(
            elapsed,
            {
                "drivers_done": drivers_done,
                "charging": charging,
                "conflicts": world.stats.conflicts,
                "sample": sample,
            },
        )
        # Sampling reads the store in the event loop: at most about twice per real second.
        await sleep_sim(world.clock, max(60.0, params.speed / 2))
