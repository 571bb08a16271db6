"""`chargeshare bench ocpp --processes 1,2`: our central system as N real `chargeshare serve`
processes on one PostgreSQL database and one Redis, the chargers spread over them as a balancer would.

For each fleet size and each process count N, one after the other:

1. A fresh PostgreSQL database gets the fleet (`ocpp.prepare_fleet`: chargers, drivers, a "charge now"
   booking each) and an operator account, before any process starts (`serve` migrates the schema at
   start; the fleet is set up without it). The Redis database is flushed.
2. N `python -m chargeshare serve --known-chargers-only` processes start on 127.0.0.1, each on its own
   port, with the same database, Redis and token secret. Charger i connects straight to process i % N
   (no balancer in between, so its cost is not measured).
3. The load generator (a process of its own) boots the chargers and starts their transactions, then
   - throughput: M frames in all, each charger sending its next when the previous is answered (as in
     `bench ocpp`), counted per process;
   - commands: for a sample of chargers, an operator's TriggerMessage (Heartbeat) through
     `POST /admin/chargers/{id}/commands`, one at a time, on the process holding the charger ("local")
     and, with N >= 2, on another one ("cross": routed through Redis to the holder and back). The
     charger accepts it (a real answer, not a CALLERROR). Latency is the HTTP round trip on the caller.
4. Checks: every call answered, every command answered "done", and each charger's last acknowledged
   reading is the one in the database once the processes stopped.

Targets: the cross-process command p99 under 100 ms, and the total round trips/s with 2 processes at
least 1.6x the 1-process figure measured in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from chargeshare.benchmarks.databases import temporary_postgres
from chargeshare.benchmarks.ocpp_load import (
    CLOSE_TIMEOUT_S,
    CONNECT_ATTEMPTS,
    CONNECT_CONCURRENCY,
    OPEN_TIMEOUT_S,
    REPLY_TIMEOUT_S,
    SETUP_TIMEOUT_S,
    ChargerPlan,
    LightCharger,
    PhaseResult,
    close_all,
    connect_all,
    run_on_loop,
    setup,
    throughput,
)
from chargeshare.benchmarks.stats import Latency, ratio

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
MAX_PROCESSES = 8
TARGET_SCALING = 1.6  # total round trips/s with 2 processes over 1 process
TARGET_SCALING_PROCESSES = 2
TARGET_COMMAND_P99_MS = 100.0  # an operator command decided on one process, the charger on another
COMMAND_SAMPLE = 200  # chargers whose command round trip is measured, per route
COMMAND_WARMUP = 5  # per route and process, not counted: the HTTP client's first connections
COMMAND_TIMEOUT_S = 10.0  # the charger's time to answer, as the API takes it
COMMAND_HTTP_TIMEOUT_S = COMMAND_TIMEOUT_S + 5.0
COMMANDS_LIMIT_S = 120.0  # no new command after this, whatever the sample's size
SERVE_START_TIMEOUT_S = 90.0  # several interpreters importing the backend at once, on two shared cores
SERVE_STOP_TIMEOUT_S = 60.0
POLL_S = 0.1
ADMIN_EMAIL = "bench@operators.example"
ADMIN_PASSWORD = "bench-operator-password-1"
JWT_SECRET = "bench ocpp --processes: one token secret for every process"


class ServeFailed(RuntimeError):
    """A `serve` process would not start; the message carries the end of its log."""


@dataclass(frozen=True)
class ClusterParams:
    sizes: tuple[int, ...]
    processes: tuple[int, ...]
    messages: int | None  # throughput frames over all chargers; None: FRAMES_PER_CHARGER each
    postgres_url: str
    redis_url: str = DEFAULT_REDIS_URL
    throughput_limit_s: float = 120.0
    command_sample: int = COMMAND_SAMPLE


# ---- the serve processes -----------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _process_cpu_s(pid: int) -> float:
    """utime + stime of a live process (every thread), from /proc; 0 where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class ServeNode:
    index: int
    port: int
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


def serve_env(database_url: str, redis_url: str) -> dict[str, str]:
    """One database, one Redis, one token secret: what makes N processes one deployment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGESHARE_")}
    env.update(
        {
            "CHARGESHARE_DATABASE_URL": database_url,
            "CHARGESHARE_REDIS_URL": redis_url,
            "CHARGESHARE_JWT_SECRET": JWT_SECRET,
        }
    )
    # The processes run this checkout's code, wherever it is installed from.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


@contextlib.contextmanager
def serve_nodes(database_url: str, redis_url: str, count: int, logs: Path) -> Iterator[list[ServeNode]]:
    """Start `count` serve processes and wait (bounded) until each answers /health; stop them all on
    every way out (SIGTERM, then SIGKILL past a bound)."""
    env = serve_env(database_url, redis_url)
    nodes: list[ServeNode] = []
    try:
        for i in range(count):
            port, log = _free_port(), logs / f"serve-{i}.log"
            command = [sys.executable, "-m", "chargeshare", "serve", "--host", "127.0.0.1"]
            command += ["--port", str(port), "--log-level", "warning", "--known-chargers-only"]
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
                )
            nodes.append(ServeNode(i, port, log, proc))
        _wait_healthy(nodes)
        yield nodes
    finally:
        for node in nodes:
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in nodes:
            try:
                node.proc.wait(timeout=SERVE_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait(timeout=10)


def _wait_healthy(nodes: Sequence[ServeNode]) -> None:
    deadline = time.monotonic() + SERVE_START_TIMEOUT_S
    with httpx.Client(timeout=2.0) as http:
        for node in nodes:
            while True:
                if node.proc.poll() is not None:
                    raise ServeFailed(f"serve {node.index} exited ({node.proc.returncode}): {node.tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if http.get(f"{node.http}/health").status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise ServeFailed(
                        f"serve {node.index} not healthy in {SERVE_START_TIMEOUT_S:g} s: {node.tail()}"
                    )
                time.sleep(POLL_S)


def admin_token(database_url: str) -> str:
    """An operator account, and a bearer token every process takes (one secret)."""
    from chargeshare.bootstrap import Config, build

    app = build(
        Config(database_url=database_url, jwt_secret=JWT_SECRET, password_hash="fast"), create_schema=False
    )
    try:
        account = app.auth.add_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
        return app.auth.issue(account).token
    finally:
        app.close()


def flush_redis(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


# ---- the load (in a process of its own) --------------------------------------------------------------
@dataclass(frozen=True)
class ClusterLoad:
    ws_urls: tuple[str, ...]  # one per process; charger i connects to ws_urls[i % N]
    http_urls: tuple[str, ...]
    token: str
    messages: int
    throughput_limit_s: float
    command_sample: int


def merged(parts: Sequence[PhaseResult], wall_s: float) -> PhaseResult:
    out = PhaseResult(wall_s=wall_s)
    for p in parts:
        out.sent += p.sent
        out.answered += p.answered
        out.call_errors += p.call_errors
        out.failures += p.failures
        out.latencies_ns += p.latencies_ns
        out.by_action.update(p.by_action)
    return out


def sample_indexes(chargers: int, sample: int) -> list[int]:
    """`sample` chargers spread evenly over the fleet (so over the processes too)."""
    k = min(chargers, sample)
    return sorted({i * chargers // k for i in range(k)})


@dataclass
class CommandRoute:
    """One way of sending commands ("local": through the process holding the charger; "cross":
    through another one), as the caller saw it."""

    sent: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    latencies_ns: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = Latency.of_ns(self.latencies_ns) if self.latencies_ns else Latency(0, 0.0, 0.0)
        return {
            "sent": self.sent,
            "done": self.outcomes.get("done", 0),
            "outcomes": dict(sorted(self.outcomes.items())),
            "p50_ms": round(lat.p50_ms, 3),
            "p99_ms": round(lat.p99_ms, 3),
            "max_ms": round(max(self.latencies_ns, default=0) / 1e6, 3),
        }


async def commands(chargers: Sequence[LightCharger], load: ClusterLoad) -> dict[str, Any]:
    """TriggerMessage (Heartbeat) through the operator API for a sample of chargers, one at a time, on
    the holding process and on the next one; which goes first alternates."""
    n = len(load.http_urls)
    picked = sample_indexes(len(chargers), load.command_sample)
    deadline = time.monotonic() + COMMANDS_LIMIT_S
    listeners = [asyncio.create_task(chargers[i].listen(deadline + COMMAND_HTTP_TIMEOUT_S)) for i in picked]
    routes = {"local": CommandRoute()} | ({"cross": CommandRoute()} if n > 1 else {})
    body = {"action": "TriggerMessage", "payload": {"message": "Heartbeat"}, "timeout_s": COMMAND_TIMEOUT_S}
    headers = {"Authorization": f"Bearer {load.token}"}
    clients = [
        httpx.AsyncClient(base_url=u, timeout=COMMAND_HTTP_TIMEOUT_S, headers=headers) for u in load.http_urls
    ]

    async def send(http: httpx.AsyncClient, charger: LightCharger, route: CommandRoute | None) -> None:
        started = time.perf_counter_ns()
        try:
            r = await http.post(f"/admin/chargers/{charger.plan.charger_id}/commands", json=body)
            outcome = str(r.json().get("result")) if r.status_code == 200 else f"http_{r.status_code}"
        except (httpx.HTTPError, ValueError):
            outcome = "no_answer"
        if route is not None:
            route.sent += 1
            route.latencies_ns.append(time.perf_counter_ns() - started)
            route.outcomes[outcome] = route.outcomes.get(outcome, 0) + 1

    warmup = picked[: COMMAND_WARMUP * n]
    try:
        for k, i in enumerate(warmup):  # every client's connection, every route
            await send(clients[(i + k) % n], chargers[i], None)
        for k, i in enumerate(picked):
            if time.monotonic() > deadline:
                break
            owner = i % n
            order = [("local", owner)] + ([("cross", (owner + 1) % n)] if n > 1 else [])
            for name, node in order if k % 2 == 0 else reversed(order):
                await send(clients[node], chargers[i], routes[name])
    finally:
        for t in listeners:
            t.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        for c in clients:
            await c.aclose()
    return {
        "sampled": len(picked),
        "warmup": len(warmup),  # sent before the measured ones, not counted in the routes
        "answered_by_chargers": sum(chargers[i].commands_answered for i in picked),
        **{name: route.summary() for name, route in routes.items()},
    }


async def run_cluster_load(
    plans: Sequence[ChargerPlan], load: ClusterLoad, say: Callable[[str], None]
) -> dict[str, Any]:
    n = len(load.ws_urls)
    started = time.perf_counter()
    connected = await asyncio.gather(*(connect_all(load.ws_urls[k], plans[k::n]) for k in range(n)))
    groups = [chargers for chargers, _ in connected]
    failed = [f for _, fails in connected for f in fails]
    connect_s = time.perf_counter() - started
    everyone = [c for g in groups for c in g]
    say(
        f"{len(everyone):,} connected to {n} process(es) in {connect_s:.1f} s"
        + (f", {len(failed)} failed" if failed else "")
    )
    report: dict[str, Any] = {
        "connected": len(everyone),
        "connect_failures": failed[:5],
        "connect_s": round(connect_s, 2),
    }
    try:
        if failed:
            return report
        setup_phase = await setup(everyone)
        report["setup"] = setup_phase.summary()
        say(f"set up ({setup_phase.answered:,} calls answered) in {setup_phase.wall_s:.1f} s")
        shares = [load.messages * len(g) // len(everyone) for g in groups]
        shares[0] += load.messages - sum(shares)
        started = time.perf_counter()
        parts = await asyncio.gather(
            *(throughput(g, m, load.throughput_limit_s) for g, m in zip(groups, shares, strict=True))
        )
        total = merged(parts, time.perf_counter() - started)
        report["throughput"] = total.summary()
        report["throughput_by_process"] = [p.summary() for p in parts]
        t = report["throughput"]
        say(
            f"throughput: {t['answered']:,} answered, {t['round_trips_per_s']:,.0f}/s, "
            f"p99 {t['p99_ms']:.1f} ms"
        )
        # Charger i is groups[i % n][i // n]: back in fleet order, so i % n is its process.
        ordered = [groups[i % n][i // n] for i in range(len(everyone))]
        report["commands"] = cmds = await commands(ordered, load)
        say(
            "commands: "
            + ", ".join(
                f"{r} p50 {cmds[r]['p50_ms']:.1f} ms p99 {cmds[r]['p99_ms']:.1f} ms"
                for r in ("local", "cross")
                if r in cmds
            )
        )
        report["transactions"] = sum(c.transaction_id is not None for c in everyone)
        report["acked_registers"] = {
            c.plan.cp_id: [c.transaction_id, c.acked_register_wh] for c in everyone if c.transaction_id
        }
    finally:
        await close_all(everyone)
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    report["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)
    return report


def cluster_load_process(plans: list[ChargerPlan], load: ClusterLoad, pipe: Connection) -> None:
    try:
        report = run_on_loop(run_cluster_load(plans, load, lambda text: pipe.send(("progress", text))))
        pipe.send(("done", report))
    except Exception as exc:
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        pipe.close()


# ---- one run, and the report -------------------------------------------------------------------------
@dataclass
class ProcessesRun:
    chargers: int
    processes: int
    load: dict[str, Any]
    cpu_s: list[float]  # each serve process's, just before it was stopped
    stored_ok: int

    @property
    def rate(self) -> float:
        return float(self.load.get("throughput", {}).get("round_trips_per_s", 0.0))

    def command(self, route: str) -> dict[str, Any]:
        found: dict[str, Any] = self.load.get("commands", {}).get(route, {})
        return found

    @property
    def all_answered(self) -> bool:
        phases = [self.load.get("setup"), self.load.get("throughput")]
        calls = all(p is not None and p["answered"] == p["sent"] for p in phases)
        cmds = self.load.get("commands", {})
        routes = [cmds[r] for r in ("local", "cross") if r in cmds]
        commands_done = bool(routes) and all(r["sent"] > 0 and r["done"] == r["sent"] for r in routes)
        return calls and commands_done

    def to_dict(self) -> dict[str, Any]:
        return {
            "chargers": self.chargers,
            "processes": self.processes,
            "all_answered": self.all_answered,
            "stored_ok": self.stored_ok,
            "serve_cpu_s": self.cpu_s,
            "load": {k: v for k, v in self.load.items() if k != "acked_registers"},
        }


@dataclass
class ClusterSize:
    chargers: int
    runs: dict[int, ProcessesRun] = field(default_factory=dict)

    def scaling(self, processes: int) -> float:
        """Total round trips/s with `processes` over the 1-process figure of the same run."""
        if 1 not in self.runs or processes not in self.runs:
            return math.nan
        return ratio(self.runs[processes].rate, self.runs[1].rate)

    @property
    def meets_scaling(self) -> bool | None:
        if 1 not in self.runs or TARGET_SCALING_PROCESSES not in self.runs:
            return None
        return self.scaling(TARGET_SCALING_PROCESSES) >= TARGET_SCALING

    def cross_p99_ms(self) -> float | None:
        """The cross-process command p99 at the most processes run (None with only one process)."""
        runs = [r for n, r in sorted(self.runs.items()) if n > 1]
        return float(runs[-1].command("cross").get("p99_ms", math.inf)) if runs else None

    @property
    def meets_command(self) -> bool | None:
        p99 = self.cross_p99_ms()
        return None if p99 is None else p99 < TARGET_COMMAND_P99_MS

    def to_dict(self) -> dict[str, Any]:
        return {
            "chargers": self.chargers,
            "scaling": {str(n): round(self.scaling(n), 3) for n in self.runs if 1 in self.runs},
            "meets_scaling_target": self.meets_scaling,
            "cross_command_p99_ms": self.cross_p99_ms(),
            "meets_command_target": self.meets_command,
            "runs": [r.to_dict() for r in self.runs.values()],
        }


@dataclass
class ClusterReport:
    params: dict[str, Any]
    machine: dict[str, Any]
    sizes: list[ClusterSize] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every call and command answered, every charger's last reading held, in every run."""
        return all(r.all_answered and r.stored_ok == r.chargers for s in self.sizes for r in s.runs.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": "ocpp-processes",
            "target_scaling": TARGET_SCALING,
            "target_command_p99_ms": TARGET_COMMAND_P99_MS,
            "ok": self.ok,
            "params": self.params,
            "machine": self.machine,
            "sizes": [s.to_dict() for s in self.sizes],
        }


def _load_timeout(p: ClusterParams, chargers: int) -> float:
    connecting = chargers * CONNECT_ATTEMPTS * OPEN_TIMEOUT_S / CONNECT_CONCURRENCY
    phases = p.throughput_limit_s + REPLY_TIMEOUT_S + COMMANDS_LIMIT_S + 2 * COMMAND_HTTP_TIMEOUT_S
    return connecting + SETUP_TIMEOUT_S + phases + CLOSE_TIMEOUT_S + 60.0


def run_processes(
    p: ClusterParams, url: str, plans: list[ChargerPlan], count: int, logs: Path, say: Callable[[str], None]
) -> ProcessesRun:
    from chargeshare.benchmarks.ocpp import _process_context, _receive, frames_for, stored_readings

    token = admin_token(url)
    flush_redis(p.redis_url)
    ctx = _process_context()
    with serve_nodes(url, p.redis_url, count, logs) as nodes:
        say(f"{count} serve process(es) up on ports {', '.join(str(n.port) for n in nodes)}")
        load = ClusterLoad(
            tuple(n.ws for n in nodes),
            tuple(n.http for n in nodes),
            token,
            frames_for(p.messages, len(plans)),
            p.throughput_limit_s,
            p.command_sample,
        )
        end, child = ctx.Pipe()
        proc = ctx.Process(target=cluster_load_process, args=(plans, load, child), name="bench-load")
        proc.start()
        child.close()
        try:
            figures: dict[str, Any] = _receive(end, _load_timeout(p, len(plans)), say, "the load generator")
        finally:
            proc.join(30)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        cpu = [round(_process_cpu_s(n.proc.pid), 2) for n in nodes]
    stored = stored_readings(url, figures.get("acked_registers", {}))
    return ProcessesRun(len(plans), count, figures, cpu, stored)


def run_cluster(p: ClusterParams, console: Console) -> ClusterReport:
    from chargeshare.benchmarks.ocpp import FRAMES_PER_CHARGER, ensure_file_limit, machine_info, prepare_fleet

    ensure_file_limit(max(p.sizes))
    shown = {
        "chargers": list(p.sizes),
        "processes": list(p.processes),
        "messages": p.messages,
        "frames_per_charger": FRAMES_PER_CHARGER if p.messages is None else None,
        "throughput_limit_s": p.throughput_limit_s,
        "command_sample": p.command_sample,
        "backend": "postgres",
    }
    report = ClusterReport(params=shown, machine=machine_info())
    with tempfile.TemporaryDirectory(prefix="chargeshare-bench-") as tmp:
        for n in p.sizes:
            size = ClusterSize(n)
            for count in p.processes:
                with temporary_postgres(p.postgres_url) as url:
                    console.print(
                        f"[bold]{n:,} chargers, {count} process(es)[/]: registering and booking them ..."
                    )
                    started = time.perf_counter()
                    plans = prepare_fleet(url, n)
                    console.print(f"  fleet ready in {time.perf_counter() - started:.1f} s")
                    logs = Path(tmp) / f"{n}-{count}"
                    logs.mkdir()
                    size.runs[count] = run_processes(
                        p, url, plans, count, logs, lambda t: console.print(f"    {t}")
                    )
            report.sizes.append(size)
    return report


def _yes(flag: bool | None) -> str:
    return "-" if flag is None else ("[green]yes[/]" if flag else "[red]no[/]")


def render_cluster(report: ClusterReport, console: Console) -> None:
    from chargeshare.benchmarks.ocpp import frames_shown

    p = report.params
    table = Table(
        title=f"OCPP 1.6J round trips over N serve processes (PostgreSQL, persistence on, Redis routing); "
        f"throughput: {frames_shown(p)} 8 MeterValues : 1 Heartbeat : 1 StatusNotification; commands: "
        f"TriggerMessage through the operator API for up to {p['command_sample']} chargers, one at a time, ms"
    )
    for col in (
        "chargers",
        "procs",
        "rt/s",
        "per process",
        "x 1 proc",
        "ack p50/p99 ms",
        "cmd local p50/p99",
        "cmd cross p50/p99",
        "answered",
        "cmds done",
        "stored",
        "serve cpu s",
    ):
        table.add_column(col, justify="right")
    for s in report.sizes:
        for n, r in sorted(s.runs.items()):
            t = r.load.get("throughput", {})
            per = " / ".join(
                f"{x['round_trips_per_s']:,.0f}" for x in r.load.get("throughput_by_process", [])
            )
            sent = sum(r.load.get(k, {}).get("sent", 0) for k in ("setup", "throughput"))
            answered = sum(r.load.get(k, {}).get("answered", 0) for k in ("setup", "throughput"))
            routes = [r.command(k) for k in ("local", "cross") if r.command(k)]

            def lat(route: dict[str, Any]) -> str:
                return f"{route['p50_ms']:.1f}/{route['p99_ms']:.1f}" if route else "-"

            table.add_row(
                f"{s.chargers:,}",
                str(n),
                f"{r.rate:,.0f}",
                per or "-",
                f"{s.scaling(n):.2f}" if not math.isnan(s.scaling(n)) else "-",
                f"{t.get('p50_ms', 0):.1f}/{t.get('p99_ms', 0):.1f}" if t else "-",
                lat(r.command("local")),
                lat(r.command("cross")),
                f"{answered:,}/{sent:,}",
                f"{sum(x['done'] for x in routes)}/{sum(x['sent'] for x in routes)}",
                f"{r.stored_ok:,}/{r.chargers:,}",
                " / ".join(f"{c:.1f}" for c in r.cpu_s),
            )
    console.print(table)
    verdict = Table(
        title=f"Targets: round trips/s with {TARGET_SCALING_PROCESSES} processes >= {TARGET_SCALING:g}x 1 "
        f"process; cross-process command p99 < {TARGET_COMMAND_P99_MS:g} ms"
    )
    for col in (
        "chargers",
        f"{TARGET_SCALING_PROCESSES} processes / 1",
        f">= {TARGET_SCALING:g}x",
        "cross p99 ms",
        f"< {TARGET_COMMAND_P99_MS:g} ms",
    ):
        verdict.add_column(col, justify="right")
    for s in report.sizes:
        scaling = s.scaling(TARGET_SCALING_PROCESSES)
        p99 = s.cross_p99_ms()
        verdict.add_row(
            f"{s.chargers:,}",
            "-" if math.isnan(scaling) else f"{scaling:.2f}",
            _yes(s.meets_scaling),
            "-" if p99 is None else f"{p99:.1f}",
            _yes(s.meets_command),
        )
    console.print(verdict)
