"""`chargeshare bench des`: the discrete-event engine at fleet scale, beside a bare SimPy loop.

One DES run (`simulators.des.run_des`) of `chargers` chargers and `drivers` drivers for `hours`
simulated hours, on an in-memory SQLite store, counting the SimPy events it processes and the OCPP
frames on its in-process links. Then, in the same process, a bare SimPy loop processes the same
number of events in the same shape (one process per charger and per driver, each yielding seeded
timeouts spread over the same horizon) and nothing else: what SimPy alone costs. The ratio of the
two wall times is what the models, the frames and the services add on top of the event loop.

Wall time covers building the store and the fleet, simulating, winding down and checking every
invariant. CPU time (this process's, user + system) is reported beside it: on a shared machine the
wall time also counts waiting for a core, the CPU time does not. Run with `--cprofile` to see where
the time goes (profiling slows it, so its times are not the figures).
"""

from __future__ import annotations

import cProfile
import io
import pstats
import random
import resource
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import simpy
from rich.console import Console
from rich.table import Table

from simulators.des import DesParams, run_des
from simulators.des.engine import CountingEnvironment, collector_for_a_fleet
from simulators.fleet import DriverBehaviour, FleetShape

TARGET_WALL_S = 60.0  # a 10,000-charger simulated day on one core


@dataclass(frozen=True)
class DesBenchParams:
    chargers: int = 10_000
    drivers: int | None = None  # None: one per charger
    hours: float = 24.0
    heartbeat_s: int = 3_600
    meter_interval_s: int = 900
    radius_km: float = 30.0  # fleet and drivers spread over a metropolitan area
    seed: int = 1
    profile: bool = False

    def des_params(self) -> DesParams:
        radius_m = self.radius_km * 1000
        return DesParams(
            chargers=self.chargers,
            drivers=self.chargers if self.drivers is None else self.drivers,
            duration_s=int(self.hours * 3600),
            seed=self.seed,
            heartbeat_s=self.heartbeat_s,
            meter_interval_s=self.meter_interval_s,
            fleet=FleetShape(radius_m=radius_m),
            behaviour=DriverBehaviour(radius_m=radius_m),
        )


@dataclass(frozen=True)
class DesBenchResult:
    chargers: int
    drivers: int
    simulated_s: int
    heartbeat_s: int
    meter_interval_s: int
    radius_km: float
    seed: int
    events: int
    frames: int
    sessions: int
    invariants_ok: bool
    setup_s: float
    run_s: float
    cpu_s: float
    bare_events: int
    bare_wall_s: float
    bare_cpu_s: float
    peak_rss_mb: float  # this process's high-water resident memory: the DES run's, as it comes first
    profile: str | None = None

    @property
    def wall_s(self) -> float:
        return self.setup_s + self.run_s

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s if self.wall_s > 0 else float("inf")

    @property
    def bare_events_per_s(self) -> float:
        return self.bare_events / self.bare_wall_s if self.bare_wall_s > 0 else float("inf")

    @property
    def ratio(self) -> float:
        """DES wall time per event over the bare loop's: what everything beyond SimPy costs."""
        return self.bare_events_per_s / self.events_per_s if self.events_per_s > 0 else float("inf")

    @property
    def cpu_ratio(self) -> float:
        """The same ratio on CPU time: what it would be with a core to itself."""
        per_event = self.cpu_s / self.events if self.events else 0.0
        bare_per_event = self.bare_cpu_s / self.bare_events if self.bare_events else 0.0
        return per_event / bare_per_event if bare_per_event > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body.pop("profile")
        body.update(
            benchmark="des",
            wall_s=round(self.wall_s, 3),
            events_per_s=round(self.events_per_s, 1),
            bare_events_per_s=round(self.bare_events_per_s, 1),
            ratio=round(self.ratio, 2),
            cpu_ratio=round(self.cpu_ratio, 2),
            peak_rss_mb=round(self.peak_rss_mb, 1),
            target_wall_s=TARGET_WALL_S,
        )
        return body


def bare_loop(events: int, processes: int, horizon_s: float, seed: int) -> tuple[int, float, float]:
    """Process about `events` SimPy events: `processes` processes, each yielding seeded timeouts
    spread over `horizon_s`. Returns (events processed, wall and CPU seconds of the run alone)."""
    processes = max(1, min(processes, events // 3 or 1))
    # Each process costs its start and its end as events, plus one per timeout.
    per = max(1, events // processes - 2)
    rng = random.Random(seed)
    env = CountingEnvironment()
    mean = horizon_s / per

    def proc(delays: list[float]) -> simpy.events.ProcessGenerator:
        for d in delays:
            yield env.timeout(d)

    for _ in range(processes):
        env.process(proc([rng.uniform(0, 2 * mean) for _ in range(per)]))
    started, cpu = time.perf_counter(), time.process_time()
    env.run()
    return env.processed, time.perf_counter() - started, time.process_time() - cpu


def peak_rss_bytes() -> int:
    """The most resident memory this process has held so far (Linux reports kB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def run_bench(params: DesBenchParams) -> DesBenchResult:
    des = params.des_params()
    profile_text = None
    cpu = time.process_time()
    if params.profile:
        profiler = cProfile.Profile()
        result = profiler.runcall(run_des, des)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
        profile_text = out.getvalue()
    else:
        result = run_des(des)
    cpu_s = time.process_time() - cpu
    peak_rss_mb = peak_rss_bytes() / 2**20  # before the bare loop, which holds far less
    with collector_for_a_fleet():  # as the DES run had it: the baseline gains from it too
        bare_events, bare_wall, bare_cpu = bare_loop(
            result.events, des.chargers + des.drivers, des.duration_s, params.seed
        )
    return DesBenchResult(
        chargers=des.chargers,
        drivers=des.drivers,
        simulated_s=des.duration_s,
        heartbeat_s=des.heartbeat_s,
        meter_interval_s=des.meter_interval_s,
        radius_km=params.radius_km,
        seed=params.seed,
        events=result.events,
        frames=result.frames,
        sessions=int(result.report.summary["sessions"]),
        invariants_ok=result.report.ok,
        setup_s=result.setup_s,
        run_s=result.run_s,
        cpu_s=cpu_s,
        bare_events=bare_events,
        bare_wall_s=bare_wall,
        bare_cpu_s=bare_cpu,
        peak_rss_mb=peak_rss_mb,
        profile=profile_text,
    )


def render(r: DesBenchResult, console: Console) -> None:
    hours = r.simulated_s / 3600
    table = Table(title=f"bench des: {r.chargers:,} chargers, {r.drivers:,} drivers, {hours:g} h")
    for name in ("run", "events", "wall s", "CPU s", "events/s (wall)", "OCPP frames"):
        table.add_column(name, justify="left" if name == "run" else "right")
    table.add_row(
        "DES (services, store, frames)",
        f"{r.events:,}",
        f"{r.wall_s:.1f}",
        f"{r.cpu_s:.1f}",
        f"{r.events_per_s:,.0f}",
        f"{r.frames:,}",
    )
    table.add_row(
        "bare SimPy loop",
        f"{r.bare_events:,}",
        f"{r.bare_wall_s:.2f}",
        f"{r.bare_cpu_s:.2f}",
        f"{r.bare_events_per_s:,.0f}",
        "-",
    )
    console.print(table)
    console.print(
        f"setup {r.setup_s:.1f} s + simulation {r.run_s:.1f} s (wall); {r.sessions:,} sessions; "
        f"heartbeat {r.heartbeat_s} s when idle, MeterValues every {r.meter_interval_s} s; "
        f"invariants {'[green]hold[/]' if r.invariants_ok else '[red]FAIL[/]'}; "
        f"peak RSS {r.peak_rss_mb:,.0f} MB"
    )
    console.print(f"DES / bare loop per event: {r.ratio:.1f}x on wall time, {r.cpu_ratio:.1f}x on CPU time")
    if r.chargers >= 10_000 and r.simulated_s >= 24 * 3600:
        verdict = "[green]under[/]" if r.wall_s < TARGET_WALL_S else "[red]over[/]"
        console.print(
            f"wall {r.wall_s:.1f} s: {verdict} the {TARGET_WALL_S:.0f} s target for a 10,000-charger day"
        )
    if r.profile is not None:
        console.print("[bold]where the time goes[/] (cProfile, cumulative; profiling inflates the times):")
        console.print(r.profile, markup=False, highlight=False)
