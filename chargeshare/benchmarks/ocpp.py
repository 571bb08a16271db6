"""`chargeshare bench ocpp`: our OCPP 1.6J central system, persistence on, against a central system
built on the `ocpp` library, on its defaults and at its best settings, under the same load in the
same run.

For each fleet size N (default 1,000 and 5,000 connected chargers):

1. A fresh database (a temporary SQLite file, or a temporary PostgreSQL database) gets N registered
   chargers (one connector each, no password), N drivers, and one "charge now" booking per charger
   through `BookingService.book` (each with its card hold), so every StartTransaction opens a real
   session and every MeterValues is stored: nothing is answered without touching the database.
2. Each server asked for (`--servers`, all three by default): **ours** (`ocpp_servers.ours_process`:
   uvicorn + `create_api`, as `chargeshare serve`), then the **baseline**
   (`ocpp_servers.baseline_process`, the library on its defaults: schema validation in a thread pool
   per message) and the **tuned** baseline (`tuned_baseline_process`: validation on the loop,
   `ocpp.messages.ASYNC_VALIDATION = False`) each run in a process of their own, and the load
   generator (`ocpp_load.load_process`) in another: N raw websocket chargers connect (at most 50
   handshakes at a time), boot, start a transaction and report Charging, then
   - throughput: each charger sends its next frame as soon as the previous one is answered, M frames in
     all (8 MeterValues : 1 Heartbeat : 1 StatusNotification), bounded by a time limit;
   - paced: each charger sends one MeterValues every I seconds (default 10), staggered evenly, for S
     seconds;
   - slow provider (ours only; the baseline takes no payments): ours' payment provider answers every
     capture only after D seconds (default 12). The other chargers keep up a steady load (one frame
     per I seconds each, at most D, MeterValues and Heartbeat in turn) for D seconds; then 1% of the
     fleet stop their transactions at once, each stop queuing a capture that is stuck at the
     provider, and the others keep the same load for D seconds more. Their acknowledgements before
     and during are compared.
3. Checks: every call answered with a CALLRESULT, and each charger's last acknowledged reading is the
   one the server holds (ours: the session row in the database; baseline: its dictionary).

Latency is the charger's view: from just before `send` to the answer's arrival. Target: ours at least
2x the baseline's round trips/s and 1.5x the tuned baseline's (or the baseline's, if better), ours'
p99 under 50 ms in the paced phase from 5,000 chargers up (20,000 at one reading per 60 s), and the
other chargers' p99 under 50 ms while captures are stuck at a 12 s provider, at 1,000 chargers.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import platform
import resource
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import event

from chargeshare.adapters.sql import SqlStore
from chargeshare.benchmarks.databases import temporary_postgres, temporary_sqlite
from chargeshare.benchmarks.ocpp_load import (
    CLOSE_TIMEOUT_S,
    CONNECT_ATTEMPTS,
    CONNECT_CONCURRENCY,
    METER_STEP_WH,
    OPEN_TIMEOUT_S,
    REPLY_TIMEOUT_S,
    SETUP_TIMEOUT_S,
    ChargerPlan,
    LoadParams,
    load_process,
)
from chargeshare.benchmarks.ocpp_servers import baseline_process, ours_process, tuned_baseline_process
from chargeshare.benchmarks.stats import ratio
from chargeshare.bootstrap import Config, build
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff
from chargeshare.ocpp import V16
from chargeshare.services.booking import BookRequest

TARGET_RATIO = 2.0  # ours over the library on its defaults
TARGET_TUNED_RATIO = 1.5  # ours over the library at its best settings
TARGET_PACED_P99_MS = 50.0
TARGET_SIZE = 5_000  # the paced p99 target is stated at this size
TARGET_SLOW_P99_MS = 50.0  # the other chargers' acks while captures are stuck at the provider
TARGET_SLOW_SIZE = 1_000  # ... stated at this size
TARGET_SLOW_DELAY_S = 12.0  # ... and this provider delay
SLOW_STOPPERS_SHARE = 0.01  # of the fleet, stopping at once in the slow-provider phase (at least 1)
PACE_INTERVAL_S = 10.0
BOOKING_MINUTES = 240
BOOKING_MAX_WH = 60_000
# Files and sockets a process needs besides its chargers' sockets: the database's files, the listening
# socket, the pipes to the bench, the event loop's own descriptors.
FD_HEADROOM = 100
SERVER_START_TIMEOUT_S = 60.0
TARGETS = ("ours", "baseline", "tuned")  # tuned: the library at its best settings
MAX_CHARGERS = 20_000  # within the ephemeral port range, per run
MAX_PACED_S = 600.0
MAX_SLOW_READINGS = 14  # 2 x 120 s at most of one frame per 10 s, every other one a reading, plus one


class BenchUnfit(Exception):
    """The machine cannot run the benchmark as asked (too few file descriptors); the message says why."""


def ensure_file_limit(chargers: int) -> int:
    """Raise the soft open-file limit towards the hard one if needed; BenchUnfit if still too low.

    The load generator holds one socket per charger, and so does the server under test.
    """
    need = chargers + FD_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = hard if hard != resource.RLIM_INFINITY else None
    if soft < need and (hard == resource.RLIM_INFINITY or hard >= need):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
            soft = need
        except (ValueError, OSError):
            pass  # the kernel's own ceiling: reported below
    if soft < need:
        most = (ceiling if ceiling is not None else soft) - FD_HEADROOM
        raise BenchUnfit(
            f"{chargers:,} chargers need at least {need:,} open files per process ({FD_HEADROOM} besides "
            f"a socket per charger), but the limit is {soft:,} (hard {hard:,}): raise the hard limit, "
            f"or bench at most {max(0, most):,} chargers"
        )
    return soft


def paced_readings(paced_s: float, interval_s: float) -> int:
    """The most readings one charger sends in the paced phase: one per interval, plus the first."""
    return math.floor(paced_s / interval_s) + 1


# The throughput phase's default length, in frames per charger. A closed loop needs some rounds to
# reach its steady state: with only a few, every charger's frames arrive in lock-step waves, and the
# phase times the first and last waves more than the server's pace.
FRAMES_PER_CHARGER = 20


def frames_for(messages: int | None, chargers: int) -> int:
    """The throughput phase's frames for a fleet: `messages` if given, else FRAMES_PER_CHARGER each."""
    return messages if messages is not None else FRAMES_PER_CHARGER * chargers


def check_messages(
    sizes: tuple[int, ...],
    messages: int | None,
    paced_s: float = MAX_PACED_S,
    interval_s: float = PACE_INTERVAL_S,
) -> None:
    """BenchUnfit if the smallest fleet would read so much energy that a booking's limit is reached
    (ours would then send RemoteStopTransaction, and the two servers would no longer do the same work)."""
    most = BOOKING_MAX_WH // METER_STEP_WH - paced_readings(paced_s, interval_s) - MAX_SLOW_READINGS
    if messages is None:
        return  # FRAMES_PER_CHARGER each, far below the limit
    per_charger = -(-messages // min(sizes))
    if per_charger > most:
        raise BenchUnfit(
            f"{messages:,} frames over {min(sizes):,} chargers is {per_charger:,} each; at most {most:,} "
            "keep every session below its booking's energy limit"
        )


@dataclass(frozen=True)
class OcppParams:
    sizes: tuple[int, ...]
    messages: int | None  # throughput frames over all chargers; None: FRAMES_PER_CHARGER each
    paced_seconds: float
    backend: str
    postgres_url: str
    throughput_limit_s: float = 120.0
    pace_interval_s: float = PACE_INTERVAL_S
    slow_provider_s: float = 0.0  # capture delay of the slow-provider phase; 0: no such phase
    servers: tuple[str, ...] = TARGETS  # which of ours and the library's two runs, in this order

    def load(self, target: str, chargers: int) -> LoadParams:
        slow = self.slow_provider_s if target == "ours" and chargers >= 2 else 0.0
        return LoadParams(
            frames_for(self.messages, chargers),
            self.throughput_limit_s,
            self.paced_seconds,
            self.pace_interval_s,
            slow,
            stoppers(chargers) if slow else 0,
        )


def stoppers(chargers: int) -> int:
    return max(1, round(chargers * SLOW_STOPPERS_SHARE))


@dataclass
class TargetRun:
    """One server under one fleet size: what the chargers measured and what the server held."""

    target: str
    chargers: int
    load: dict[str, Any]
    server: dict[str, Any]
    stored_ok: int  # chargers whose last acknowledged reading is the one the server holds

    def phase(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.load.get(name, {})
        return found

    @property
    def slow(self) -> dict[str, Any]:
        found: dict[str, Any] = self.load.get("slow_provider", {})
        return found

    def phases(self) -> list[dict[str, Any]]:
        """Every timed phase's figures, the slow-provider phase's parts included."""
        found = [self.phase(n) for n in ("setup", "throughput", "paced") if n in self.load]
        return found + [self.slow[n] for n in ("before", "stops", "during") if n in self.slow]

    @property
    def all_answered(self) -> bool:
        phases = self.phases()
        return bool(phases) and all(p["answered"] == p["sent"] for p in phases)

    @property
    def bytes_per_connection(self) -> float | None:
        """The server's resident memory growth from ready to its peak, per connected charger."""
        ready, peak = self.server.get("rss_ready_bytes"), self.server.get("rss_peak_bytes")
        if ready is None or peak is None or not self.chargers:
            return None
        return max(0, int(peak) - int(ready)) / self.chargers

    def to_dict(self) -> dict[str, Any]:
        load = {k: v for k, v in self.load.items() if k != "acked_registers"}
        server = {k: v for k, v in self.server.items() if k != "readings"}
        per = self.bytes_per_connection
        server["bytes_per_connection"] = None if per is None else round(per)
        return {
            "target": self.target,
            "chargers": self.chargers,
            "all_answered": self.all_answered,
            "stored_ok": self.stored_ok,
            "load": load,
            "server": server,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@dataclass
class SizeResult:
    chargers: int
    setup_s: float
    runs: dict[str, TargetRun] = field(default_factory=dict)

    def rate(self, target: str) -> float:
        return float(self.runs[target].phase("throughput").get("round_trips_per_s", 0.0))

    @property
    def throughput_ratio(self) -> float | None:
        """Ours over the library on its defaults; None unless both ran."""
        if "ours" not in self.runs or "baseline" not in self.runs:
            return None
        return ratio(self.rate("ours"), self.rate("baseline"))

    @property
    def tuned_ratio(self) -> float | None:
        """Ours over the library at its best settings (its better run, if defaults happened to win);
        None unless ours and a library run ran."""
        library = [self.rate(t) for t in ("baseline", "tuned") if t in self.runs]
        if "ours" not in self.runs or not library:
            return None
        return ratio(self.rate("ours"), max(library))

    @property
    def meets_tuned(self) -> bool | None:
        r = self.tuned_ratio
        return None if r is None else r >= TARGET_TUNED_RATIO

    @property
    def paced_p99_ms(self) -> float:
        return (
            float(self.runs["ours"].phase("paced").get("p99_ms", math.inf))
            if "ours" in self.runs
            else math.inf
        )

    @property
    def meets_throughput(self) -> bool | None:
        r = self.throughput_ratio
        return None if r is None else r >= TARGET_RATIO

    @property
    def meets_paced(self) -> bool | None:
        """The p99 target is stated from 5,000 chargers up; None below, or without ours' paced phase."""
        if self.chargers < TARGET_SIZE or "ours" not in self.runs or "paced" not in self.runs["ours"].load:
            return None
        return self.paced_p99_ms < TARGET_PACED_P99_MS

    def slow_p99_ms(self, half: str) -> float:
        """The other chargers' ack p99 in the slow-provider phase's half "before" or "during"."""
        if not self.has_slow:
            return math.inf
        return float(self.runs["ours"].slow.get(half, {}).get("p99_ms", math.inf))

    @property
    def slow_ratio(self) -> float:
        """p99 while captures are stuck at the provider over p99 just before: 1 is no effect."""
        return ratio(self.slow_p99_ms("during"), self.slow_p99_ms("before"))

    @property
    def has_slow(self) -> bool:
        return "ours" in self.runs and bool(self.runs["ours"].slow)

    @property
    def meets_slow(self) -> bool | None:
        """Stated at 1,000 chargers with a 12 s provider; None elsewhere or without the phase."""
        if not self.has_slow or self.chargers != TARGET_SLOW_SIZE:
            return None
        captures = self.runs["ours"].server.get("captures", {})
        if captures.get("delay_s") != TARGET_SLOW_DELAY_S:
            return None
        return self.slow_p99_ms("during") < TARGET_SLOW_P99_MS

    def to_dict(self) -> dict[str, Any]:
        return {
            "chargers": self.chargers,
            "fleet_setup_s": round(self.setup_s, 2),
            "throughput_ratio": _rounded(self.throughput_ratio),
            "meets_throughput_target": self.meets_throughput,
            "tuned_ratio": _rounded(self.tuned_ratio),
            "meets_tuned_target": self.meets_tuned,
            "meets_paced_target": self.meets_paced,
            "slow_provider_p99_ratio": round(self.slow_ratio, 3) if self.has_slow else None,
            "meets_slow_provider_target": self.meets_slow,
            "runs": [r.to_dict() for r in self.runs.values()],
        }


@dataclass
class OcppReport:
    params: dict[str, Any]
    machine: dict[str, Any]
    sizes: list[SizeResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every call answered and every charger's reading held, by both servers, at every size."""
        return all(r.all_answered and r.stored_ok == r.chargers for s in self.sizes for r in s.runs.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": "ocpp",
            "target_ratio": TARGET_RATIO,
            "target_tuned_ratio": TARGET_TUNED_RATIO,
            "target_paced_p99_ms": TARGET_PACED_P99_MS,
            "target_slow_provider_p99_ms": TARGET_SLOW_P99_MS,
            "ok": self.ok,
            "params": self.params,
            "machine": self.machine,
            "sizes": [s.to_dict() for s in self.sizes],
        }


# ---- the fleet in the database ------------------------------------------------------------------------
def cp_id(i: int) -> str:
    return f"BENCH{i:06d}"


def _no_fsync(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA synchronous=OFF")


def prepare_fleet(database_url: str, chargers: int) -> list[ChargerPlan]:
    """Register the chargers and drivers, and book every charger "now" through the booking service."""
    app = build(Config(database_url=database_url))
    if isinstance(app.store, SqlStore) and app.store.dialect == "sqlite":
        # Setting up is not measured: skip the fsync per commit here (the server under test opens the
        # database afresh, with the store's own settings).
        event.listen(app.store.engine, "connect", _no_fsync)
        app.store.engine.dispose()
    try:
        host = app.marketplace.add_host("bench host")
        plans = [ChargerPlan(cp_id(i), f"BT{i:06d}") for i in range(chargers)]
        ids: list[tuple[int, int]] = []
        with app.store.transaction() as tx:
            for i, plan in enumerate(plans):
                spec = ChargerSpec(
                    plan.cp_id,
                    host,
                    Point(51.0 + (i % 100) * 0.02, -2.0 + (i // 100) * 0.002),
                    Tariff(30),
                    (ConnectorSpec(1, ConnectorType.TYPE2, 7_400),),
                    title=f"bench charger {i}",
                )
                ids.append((tx.chargers.add(spec), tx.accounts.add_driver(f"driver {i}", plan.id_tag)))
        for plan, (charger_id, driver_id) in zip(plans, ids, strict=True):
            app.charging.boot(plan.cp_id, V16)  # "charge now" needs an online charger
            app.bookings.book(BookRequest(driver_id, charger_id, 1, BOOKING_MINUTES, BOOKING_MAX_WH))
    finally:
        app.close()
    return [replace(plan, charger_id=charger_id) for plan, (charger_id, _) in zip(plans, ids, strict=True)]


def stored_readings(database_url: str, acked: dict[str, list[int]]) -> int:
    """How many chargers' sessions hold exactly the reading the charger last had acknowledged."""
    app = build(Config(database_url=database_url), create_schema=False)
    try:
        with app.store.reading() as tx:
            return sum(
                1
                for tx_id, wh in acked.values()
                if (s := tx.sessions.get(tx_id)) is not None and s.meter_last_wh == wh
            )
    finally:
        app.close()


def baseline_readings(server: dict[str, Any], acked: dict[str, list[int]]) -> int:
    readings: dict[int, int] = server.get("readings", {})
    return sum(1 for tx_id, wh in acked.values() if readings.get(tx_id) == wh)


# ---- processes -----------------------------------------------------------------------------------------
def _receive(pipe: Connection, timeout_s: float, say: Callable[[str], None], what: str) -> Any:
    """The next ("ready" | "done", value) from a child, printing its progress lines meanwhile."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not pipe.poll(min(left, 1.0)):
            if left <= 0:
                raise TimeoutError(f"{what} gave no answer within {timeout_s:.0f} s")
            continue
        try:
            kind, value = pipe.recv()
        except EOFError as exc:
            raise RuntimeError(f"{what} exited without an answer") from exc
        if kind == "progress":
            say(str(value))
        elif kind == "error":
            raise RuntimeError(f"{what} failed: {value}")
        else:
            return value


def _load_timeout(p: OcppParams, chargers: int) -> float:
    """Connecting, setting up, both phases and closing, each with its own bound, plus a margin."""
    connecting = chargers * CONNECT_ATTEMPTS * OPEN_TIMEOUT_S / CONNECT_CONCURRENCY
    phases = p.throughput_limit_s + p.paced_seconds + p.pace_interval_s + 2 * REPLY_TIMEOUT_S
    if p.slow_provider_s:  # two halves, each with a call that may be answered late
        phases += 2 * p.slow_provider_s + 3 * REPLY_TIMEOUT_S
    return connecting + SETUP_TIMEOUT_S + phases + CLOSE_TIMEOUT_S + 60.0


def _process_context() -> Any:
    """Children forked from a clean, single-threaded server process with the bench's modules loaded:
    forking the caller itself is unsafe once it has threads (a test run's, or an app's), since a lock
    held by another thread at the fork stays held in the child forever; spawning re-imports the CLI."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["chargeshare.benchmarks.ocpp_servers", "chargeshare.benchmarks.ocpp_load"])
    return ctx


def run_target(
    target: str, database_url: str | None, plans: list[ChargerPlan], p: OcppParams, say: Callable[[str], None]
) -> TargetRun:
    ctx = _process_context()
    server_end, server_child = ctx.Pipe()
    if target == "ours":
        assert database_url is not None
        server = ctx.Process(
            target=ours_process, args=(database_url, server_child, p.slow_provider_s), name="bench-ours"
        )
    else:
        entry = tuned_baseline_process if target == "tuned" else baseline_process
        server = ctx.Process(target=entry, args=(server_child,), name=f"bench-{target}")
    server.start()
    server_child.close()
    load: Any = None
    try:
        port = _receive(server_end, SERVER_START_TIMEOUT_S, say, f"the {target} server")
        load_end, load_child = ctx.Pipe()
        url = f"ws://127.0.0.1:{port}" + ("/ocpp" if target == "ours" else "")
        params = p.load(target, len(plans))
        load = ctx.Process(target=load_process, args=(url, plans, params, load_child), name="bench-load")
        load.start()
        load_child.close()
        figures = _receive(load_end, _load_timeout(p, len(plans)), say, "the load generator")
        load.join(30)
        server_end.send("stop")
        try:  # ours first records every charger going offline (one transaction each), then stops
            held = _receive(server_end, 60.0 + 0.05 * len(plans), say, f"the {target} server")
        except TimeoutError as exc:
            say(f"[yellow]{exc}: stopped it[/]")
            held = {"stopped": "terminated"}
    finally:
        for proc in (load, server):
            if proc is not None:
                proc.join(5)
                if proc.is_alive():
                    proc.terminate()
                    proc.join(5)
    acked = figures.get("acked_registers", {})
    stored = stored_readings(database_url, acked) if database_url else baseline_readings(held, acked)
    return TargetRun(target, len(plans), figures, held, stored)


# ---- running -------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "ocpp": installed("ocpp"),
        "websockets": installed("websockets"),
        "uvicorn": installed("uvicorn"),
        "uvloop": installed("uvloop"),
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }


@contextmanager
def _database(backend: str, postgres_url: str) -> Iterator[str]:
    db: AbstractContextManager[str] = (
        temporary_sqlite("ocpp.db") if backend == "sqlite" else temporary_postgres(postgres_url)
    )
    with db as url:
        yield url


def run_ocpp(p: OcppParams, console: Console) -> OcppReport:
    ensure_file_limit(max(p.sizes))
    shown = {
        "chargers": list(p.sizes),
        "messages": p.messages,
        "frames_per_charger": FRAMES_PER_CHARGER if p.messages is None else None,
        "throughput_limit_s": p.throughput_limit_s,
        "paced_seconds": p.paced_seconds,
        "pace_interval_s": p.pace_interval_s,
        "slow_provider_s": p.slow_provider_s,
        "backend": p.backend,
        "servers": list(p.servers),
    }
    report = OcppReport(params=shown, machine=machine_info())
    for n in p.sizes:
        with _database(p.backend, p.postgres_url) as url:
            console.print(f"[bold]{n:,} chargers[/]: registering and booking them ({p.backend}) ...")
            started = time.perf_counter()
            plans = prepare_fleet(url, n)
            size = SizeResult(n, time.perf_counter() - started)
            console.print(f"  fleet ready in {size.setup_s:.1f} s")
            for target in p.servers:
                console.print(f"  {target}:")
                size.runs[target] = run_target(
                    target, url if target == "ours" else None, plans, p, lambda t: console.print(f"    {t}")
                )
        report.sizes.append(size)
    return report


# ---- the report ----------------------------------------------------------------------------------------
def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _yes(flag: bool | None) -> str:
    return "-" if flag is None else ("[green]yes[/]" if flag else "[red]no[/]")


def frames_shown(params: dict[str, Any]) -> str:
    if params.get("messages") is None:
        return f"{params.get('frames_per_charger', FRAMES_PER_CHARGER)} frames per charger"
    return f"{params['messages']:,} frames"


def render(report: OcppReport, console: Console) -> None:
    p = report.params
    table = Table(
        title=f"OCPP 1.6J round trips, ours ({p['backend']}, persistence on) vs the ocpp library on its "
        f"defaults (baseline) and at its best settings (tuned: validation on the loop), in memory; "
        f"throughput: {frames_shown(p)} 8 MeterValues : 1 Heartbeat : 1 "
        f"StatusNotification; paced: 1 MeterValues per {p['pace_interval_s']:g} s per charger for "
        f"{p['paced_seconds']:g} s"
    )
    for col in (
        "chargers",
        "server",
        "round trips/s",
        "p50/p99 ms",
        "paced p50/p99 ms",
        "answered",
        "stored",
        "cpu s",
        "kB/charger",
    ):
        table.add_column(col, justify="left" if col == "server" else "right")
    for s in report.sizes:
        for r in s.runs.values():
            t, pc = r.phase("throughput"), r.phase("paced")
            sent = sum(phase["sent"] for phase in r.phases())
            answered = sum(phase["answered"] for phase in r.phases())
            table.add_row(
                f"{s.chargers:,}",
                r.target,
                f"{t.get('round_trips_per_s', 0):,.0f}",
                f"{t.get('p50_ms', 0):.1f}/{t.get('p99_ms', 0):.1f}" if t else "-",
                f"{pc['p50_ms']:.1f}/{pc['p99_ms']:.1f}" if pc else "-",
                f"{answered:,}/{sent:,}",
                f"{r.stored_ok:,}/{r.chargers:,}",
                f"{r.server.get('cpu_s', 0):.1f}",
                "-" if r.bytes_per_connection is None else f"{r.bytes_per_connection / 1024:.1f}",
            )
    console.print(table)
    verdict = Table(
        title=f"Targets: ours/baseline round trips/s >= {TARGET_RATIO:g}, ours/tuned >= "
        f"{TARGET_TUNED_RATIO:g}; ours paced p99 < 50 ms from 5,000 chargers up"
    )
    columns = (
        "chargers",
        "ours/baseline",
        f">= {TARGET_RATIO:g}x",
        "ours/tuned",
        f">= {TARGET_TUNED_RATIO:g}x",
    )
    for col in (*columns, "ours paced p99 ms", "< 50 ms"):
        verdict.add_column(col, justify="right")
    for s in report.sizes:
        verdict.add_row(
            f"{s.chargers:,}",
            _ratio(s.throughput_ratio),
            _yes(s.meets_throughput),
            _ratio(s.tuned_ratio),
            _yes(s.meets_tuned),
            f"{s.paced_p99_ms:.1f}" if "ours" in s.runs and "paced" in s.runs["ours"].load else "-",
            _yes(s.meets_paced),
        )
    console.print(verdict)
    if any(s.has_slow for s in report.sizes):
        render_slow(report, console)


def render_slow(report: OcppReport, console: Console) -> None:
    delay = report.params["slow_provider_s"]
    table = Table(
        title=f"Slow provider, ours: captures answered after {delay:g} s. The other chargers' acks (1 frame "
        f"per {min(report.params['pace_interval_s'], delay):g} s each, MeterValues and Heartbeat in turn) "
        f"for {delay:g} s before and {delay:g} s after 1% of the fleet stop. Target: p99 during "
        f"< {TARGET_SLOW_P99_MS:g} ms at {TARGET_SLOW_SIZE:,} chargers, {TARGET_SLOW_DELAY_S:g} s provider"
    )
    for col in (
        "chargers",
        "stops",
        "before p50/p99 ms",
        "during p50/p99 ms",
        "p99 during/before",
        "captures asked/answered",
        "on the loop",
        f"< {TARGET_SLOW_P99_MS:g} ms",
    ):
        table.add_column(col, justify="right")
    for s in report.sizes:
        if not s.has_slow:
            continue
        ours = s.runs["ours"]
        before, during, stops = ours.slow["before"], ours.slow["during"], ours.slow["stops"]
        captures = ours.server.get("captures", {})
        table.add_row(
            f"{s.chargers:,}",
            f"{stops['answered']}/{stops['sent']}",
            f"{before['p50_ms']:.1f}/{before['p99_ms']:.1f}",
            f"{during['p50_ms']:.1f}/{during['p99_ms']:.1f}",
            f"{s.slow_ratio:.2f}",
            f"{captures.get('asked', 0)}/{captures.get('answered', 0)}",
            str(captures.get("on_event_loop", "-")),
            _yes(s.meets_slow),
        )
    console.print(table)
