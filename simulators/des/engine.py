"""Run a fleet and its drivers against the real services in SimPy virtual time.

The composition is the live runner's (`simulators.live`) without sockets or wall-clock waits: the
same backend from `bootstrap.build` on an in-memory SQLite store, a `SimClock` for every "now",
chargers on in-process links, drivers calling the services, and the server's housekeeping sweep as
a process. Randomness comes only from seeded `random.Random` instances and SimPy breaks ties in
scheduling order, so the same parameters give the same report, byte for byte.
"""

from __future__ import annotations

import dataclasses
import gc
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import simpy

from chargeshare.bootstrap import MEMORY_DATABASE_URL, App, Config, build
from chargeshare.entrypoints.serving import MIDDLE_THRESHOLD, OLD_THRESHOLD, YOUNG_THRESHOLD
from chargeshare.services.events import ChargerOffline, SessionClosedWithoutStop
from chargeshare.services.rules import MarketplaceRules
from simulators.des.central import SUPPORTED_VERSIONS, DesCentral, NotSupportedInDes
from simulators.des.charger import DesCharger, Process
from simulators.des.clock import SimClock
from simulators.des.driver import DesWorld, run_driver
from simulators.des.faults import check_supported as check_faults
from simulators.des.faults import run_faults
from simulators.des.fleet_hub import book_hub, close_hub, run_hub
from simulators.des.house_meter import run_house_meter
from simulators.des.v2g import run_guests
from simulators.driver import DriverStats
from simulators.faults import Fault
from simulators.fleet import (
    CITIES,
    DriverBehaviour,
    FleetShape,
    make_chargers,
    make_drivers,
    price_hosts,
)
from simulators.fleet_hub import HubShape
from simulators.grid_metrics import SAMPLE_EVERY_S as GRID_SAMPLE_EVERY_S
from simulators.grid_metrics import GridMeter, announce_flex_events, lay_out_grid
from simulators.live import DEFAULT_START, LiveParams, sessions_by_protocol
from simulators.report import RunReport, summarise
from simulators.timeline import Sample, take_sample
from simulators.v2g import V2gShape

HOUSEKEEPING_EVERY_S = 30  # as the HTTP server's housekeeping task (simulated seconds)
SETTLE_S = 2 * 3600  # after the window: time for late receipts and replays, as the live runner allows


@dataclass(frozen=True)
class DesParams:
    chargers: int = 20
    drivers: int = 50
    duration_s: int = 2 * 3600
    seed: int = 7
    city: str = "bristol"
    database_url: str = MEMORY_DATABASE_URL
    # One process, one thread: no booking ever races another, so the Redis lock in front of the
    # store's serialized write would only add cost. Turn it on to exercise it anyway.
    locks: bool = False
    start: datetime = DEFAULT_START
    fleet: FleetShape = field(default_factory=FleetShape)
    behaviour: DriverBehaviour = field(default_factory=DriverBehaviour)
    faults: tuple[Fault, ...] = ()
    allow_unknown_chargers: bool = False  # development mode, as the live server's
    heartbeat_s: int = MarketplaceRules().heartbeat_interval_s  # the boot interval the CSMS hands out
    meter_interval_s: int = 900  # MeterValues while charging
    fleet_hub: HubShape | None = None  # a business account's night blocks on the first chargers
    v2g: V2gShape | None = None  # V2G guests on the first chargers (OCPP 2.1)

    @classmethod
    def from_live(cls, p: LiveParams, **overrides: Any) -> DesParams:
        base = cls(
            chargers=p.chargers,
            drivers=p.drivers,
            duration_s=p.duration_s,
            seed=p.seed,
            city=p.city,
            locks=p.locks,
            start=p.start,
            fleet=p.fleet,
            behaviour=p.behaviour,
            faults=p.faults,
            allow_unknown_chargers=p.allow_unknown_chargers,
            fleet_hub=p.fleet_hub,
            v2g=p.v2g,
        )
        return dataclasses.replace(base, **overrides)


@dataclass(frozen=True)
class DesResult:
    report: RunReport
    events: int  # SimPy events processed
    frames: int  # OCPP frames over the in-process links, both ways
    setup_s: float  # wall seconds building the store, fleet and drivers
    run_s: float  # wall seconds simulating, winding down and checking


class CountingEnvironment(simpy.Environment):
    """A SimPy environment that counts the events it processes."""

    def __init__(self) -> None:
        super().__init__()
        self.processed = 0

    def step(self) -> None:
        self.processed += 1
        super().step()


Progress = Callable[[float, dict[str, Any]], None]


def params_dict(p: DesParams) -> dict[str, Any]:
    return {
        "engine": "des",
        "chargers": p.chargers,
        "drivers": p.drivers,
        "duration_s": p.duration_s,
        "seed": p.seed,
        "city": p.city,
        "locks": p.locks,
        "start": p.start.isoformat(),
        "protocols": list(p.fleet.protocols),
        "pricing": p.fleet.pricing,
        "drivers_max_price_per_kwh": None if p.behaviour.max_price is None else list(p.behaviour.max_price),
        "allow_unknown_chargers": p.allow_unknown_chargers,
        "heartbeat_s": p.heartbeat_s,
        "meter_interval_s": p.meter_interval_s,
        "faults": [
            {"at_s": f.at_s, "action": f.action, "count": f.count, "duration_s": f.duration_s}
            for f in p.faults
        ],
        **({} if p.fleet_hub is None else {"fleet_hub": p.fleet_hub.as_dict()}),
        **({} if p.v2g is None else {"v2g": p.v2g.as_dict()}),
    }


def check_supported(params: DesParams) -> None:
    """Refuse, before any work, what this engine cannot model (naming it and what it can)."""
    check_faults(params.faults)
    others = sorted(set(params.fleet.protocols) - set(SUPPORTED_VERSIONS))
    if others:
        raise NotSupportedInDes(
            f"the DES engine's chargers speak OCPP {', '.join(SUPPORTED_VERSIONS)}, not {', '.join(others)}"
        )


def run_des(params: DesParams, progress: Progress | None = None) -> DesResult:
    if params.city not in CITIES:
        raise ValueError(f"unknown city {params.city!r}; choose one of {', '.join(CITIES)}")
    check_supported(params)
    with collector_for_a_fleet():
        return _run(params, progress)


@contextmanager
def collector_for_a_fleet() -> Iterator[None]:
    """The cycle collector at the server's pace (`entrypoints.serving`) while a run lasts, then as
    it was: a fleet is a large long-lived heap, and CPython's defaults scanned all of it a dozen
    times a run (a sixth of a large run's CPU). Cyclic garbage is still collected, a little later."""
    before = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _run(params: DesParams, progress: Progress | None) -> DesResult:
    wall_start = time.perf_counter()
    env = CountingEnvironment()
    clock = SimClock(env, params.start)
    rules = MarketplaceRules(heartbeat_interval_s=params.heartbeat_s)
    config = Config(
        database_url=params.database_url,
        locks_enabled=params.locks,
        rules=rules,
        allow_unknown_chargers=params.allow_unknown_chargers,
        grid_seed=params.seed,
    )
    app = build(config, clock=clock)
    try:
        central = DesCentral(env, app)
        world, plans, fleet_id = _populate(env, app, central, params)
        setup_s = time.perf_counter() - wall_start
        _simulate(world, central, params, plans, progress, fleet_id)
        if params.fleet_hub is not None and fleet_id is not None:
            close_hub(world, params.fleet_hub, fleet_id, params.start)
        report = summarise(app, params_dict(params), world.stats, wall_s=time.perf_counter() - wall_start)
        report = dataclasses.replace(report, deterministic=True)
        report.summary["sessions_by_protocol"] = sessions_by_protocol(app)
        report.summary["fault_outcomes"] = dict(sorted(world.stats.outcomes_of_faults.items()))
        return DesResult(
            report, env.processed, central.frames, setup_s, time.perf_counter() - wall_start - setup_s
        )
    finally:
        app.close()


def _populate(
    env: simpy.Environment, app: App, central: DesCentral, params: DesParams
) -> tuple[DesWorld, list[tuple[Any, int]], int | None]:
    rng = random.Random(params.seed)
    centre = CITIES[params.city]
    # Each kind in one transaction: at 10,000 chargers, one each was thousands of commits.
    host_ids = app.marketplace.add_hosts([f"Host {i + 1}" for i in range(max(1, params.chargers))])
    specs = make_chargers(rng, params.chargers, centre, host_ids, params.fleet)
    views = app.marketplace.add_chargers(
        specs
    )  # no password: an in-process link has no upgrade to authenticate
    for view in views[: params.fleet.dsr_chargers]:  # before they boot: they hear it then
        app.smart.set_demand_side_response(view.charger_id, True)
    price_hosts(app.pricing.set_settings, specs, params.fleet)
    houses = {}
    if params.fleet.grid is not None:
        layout = lay_out_grid(app, params.fleet.grid, views, params.seed)
        announce_flex_events(app, params.fleet.grid, layout.feeders, params.start)
        houses = layout.houses
    plans = make_drivers(rng, params.drivers, centre, params.duration_s, params.behaviour)
    driver_ids = [d.driver_id for d in app.marketplace.add_drivers([(p.name, p.id_tag) for p in plans])]
    chargers = {
        s.charge_point_id: DesCharger(
            env,
            central,
            s.charge_point_id,
            [c.max_power_w for c in s.connectors],
            epoch=params.start,
            meter_interval_s=params.meter_interval_s,
            protocol=params.fleet.protocol_of(i),
            seed=params.seed,
            smart_charge_point=params.fleet.smart_charge_points,
        )
        for i, s in enumerate(specs)
    }
    for charger in list(chargers.values())[: params.fleet.amps_only_chargers]:
        charger.take_amps_only()
    for charger in chargers.values():
        charger.wire_phases(params.fleet.phases, said=params.fleet.phases_said)
        charger.switch_phases(params.fleet.phase_switching)
    world = DesWorld(
        env, app, chargers, float(params.duration_s), DriverStats(bookings_answered=set()), houses=houses
    )
    fleet_id = None
    if params.fleet_hub is not None:
        ids = [v.charger_id for v in views]
        fleet_id = book_hub(world, params.fleet_hub, ids, params.start, params.duration_s)
    if params.v2g is not None:
        world.stats.v2g_registers = {}
        world.v2g_chargers = [v.charger_id for v in views]
    return world, list(zip(plans, driver_ids, strict=True)), fleet_id


def _grid_meter(world: DesWorld, params: DesParams) -> GridMeter:
    with world.app.store.reading() as tx:
        by_connector = {
            (c.charge_point_id, k.connector_no): k.connector_id
            for c in tx.chargers.all()
            for k in c.connectors
        }

    def drawing() -> list[tuple[int, int, bool]]:
        return [
            (by_connector[(cp_id, no)], watts, held)
            for cp_id, charger in world.chargers.items()
            for no, watts, held in charger.drawing()
        ]

    return GridMeter(world.app, drawing, params.meter_interval_s, params.start, world.houses)


def _sample_grid(world: DesWorld, meter: GridMeter) -> Process:
    while True:
        meter.sample(world.app.clock.now())
        yield world.env.timeout(GRID_SAMPLE_EVERY_S)


def _housekeeping(world: DesWorld) -> Process:
    """The server's periodic sweep (`services.housekeeping`), on simulated time."""
    while True:
        yield world.env.timeout(HOUSEKEEPING_EVERY_S)
        for step, why in world.app.housekeeping.sweep().failed.items():
            world.stats.errors.append(f"housekeeping {step} failed: {why}")


def _report_progress(world: DesWorld, progress: Progress, every_s: float, start: datetime) -> Process:
    """As the live runner's: the drivers' progress and a sample of the backend's own view (reading
    the store changes nothing, so the report's bytes stay the same)."""
    while True:
        charging = sum(
            1
            for c in world.chargers.values()
            for x in c.connectors.values()
            if x.plugged is not None and x.plugged.transaction_id is not None
        )
        progress(
            min(world.env.now, world.window_end_s),
            {
                "drivers_done": sum(world.stats.outcomes.values()),
                "charging": charging,
                "conflicts": world.stats.conflicts,
                "sample": _sample(world, start),
            },
        )
        yield world.env.timeout(every_s)


def _sample(world: DesWorld, start: datetime) -> Sample:
    return take_sample(
        world.app,
        start,
        faults_fired=world.stats.faults_fired,
        drivers_done=sum(world.stats.outcomes.values()),
        conflicts=world.stats.conflicts,
    )


def _simulate(
    world: DesWorld,
    central: DesCentral,
    params: DesParams,
    plans: list[tuple[Any, int]],
    progress: Progress | None,
    fleet_id: int | None = None,
) -> None:
    env, app, stats = world.env, world.app, world.stats
    window_end = params.start + timedelta(seconds=params.duration_s)
    stats.wind_down_from = window_end
    app.bus.subscribe(ChargerOffline, lambda _e: stats.count_offline(app.clock.now() < window_end))
    app.bus.subscribe(SessionClosedWithoutStop, lambda _e: stats.count_closed_without_stop())
    for charger in world.chargers.values():
        charger.connect()
        env.process(charger.heartbeats())
    env.process(_housekeeping(world))
    if params.fleet.grid is not None:
        stats.grid = _grid_meter(world, params)
        env.process(_sample_grid(world, stats.grid))
        for site_id, house in world.houses.items():
            env.process(run_house_meter(world, site_id, house))
    if progress is not None:
        env.process(_report_progress(world, progress, max(60.0, params.duration_s / 100), params.start))
    drivers = [env.process(run_driver(plan, driver_id, world)) for plan, driver_id in plans]
    if params.fleet_hub is not None and fleet_id is not None:
        drivers.append(env.process(run_hub(world, params.fleet_hub, fleet_id, params.seed)))
    if params.v2g is not None:
        drivers.append(env.process(run_guests(world, params.v2g, world.v2g_chargers, params.start)))
    faults = env.process(run_faults(world, params.faults))
    env.run(until=env.all_of(drivers) | env.timeout(params.duration_s + SETTLE_S))
    for process in (faults, *drivers):
        if process.triggered and not process.ok:
            stats.errors.append(f"a process failed: {process.value!r}")
    env.run(until=env.process(_wind_down(world)))
    if progress is not None:
        done = {"drivers_done": len(plans), "charging": 0, "conflicts": stats.conflicts}
        progress(params.duration_s, {**done, "sample": _sample(world, params.start), "final": True})


def _wind_down(world: DesWorld) -> Process:
    """Faults healed, anything still plugged in unplugged, queues flushed; unused bookings released;
    then every link closed, as the live runner stops its chargers."""
    env, app, stats = world.env, world.app, world.stats
    for charger in world.chargers.values():
        charger.settle_down()
    yield env.timeout(1)  # let commands already on their way land first
    for charger in world.chargers.values():
        for no in charger.connectors:
            charger.unplug(no)
    yield env.timeout(1)
    for charger in world.chargers.values():
        charger.settle_down()
    stats.charger_reconnects = sum(c.reconnects for c in world.chargers.values())
    stats.frames_left_queued = sum(len(c.queue) for c in world.chargers.values())
    stats.smart_gates = [g for c in world.chargers.values() for g in c.smart_gates]
    app.housekeeping.wind_down()
    yield env.timeout(1)
    for charger in world.chargers.values():
        charger.stop()
    with app.store.transaction() as tx:
        stats.payments_backlog = len(tx.outbox.all("pending")) + len(tx.outbox.all("dead"))
    app.settlement.reconcile()
