"""`chargeshare bench`: benchmarks that report ratios against a baseline measured in the same run."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from chargeshare.cli.errors import ENVIRONMENT, Problem
from chargeshare.cli.options import (
    chatter,
    configure_logging,
    duration_option,
    json_option,
    to_stdout,
    write_output,
)

# Defaults of chargeshare.benchmarks, repeated so that --help loads no benchmark (a test keeps them equal).
DEFAULT_POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
DEFAULT_OCPP_REDIS_URL = "redis://127.0.0.1:6379/13"

app = typer.Typer(
    help=(
        "Benchmarks, each beside a baseline measured in the same run: map search (geo), the booking "
        "race (race), the OCPP server (ocpp), the discrete-event engine (des)."
    ),
    no_args_is_help=True,
)


class Backend(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"
    BOTH = "both"

    def backends(self) -> tuple[str, ...]:
        return ("sqlite", "postgres") if self is Backend.BOTH else (self.value,)


class Locks(StrEnum):
    ON = "on"
    OFF = "off"
    BOTH = "both"

    def modes(self) -> tuple[bool, ...]:
        return (True, False) if self is Locks.BOTH else (self is Locks.ON,)


BackendOpt = Annotated[Backend, typer.Option(help="Which database(s) to run against.")]
PostgresOpt = Annotated[
    str,
    typer.Option(
        help="Admin URL of a PostgreSQL server with PostGIS; the bench creates and drops its own database."
    ),
]
REPORT_WIDTH = 130  # when not on a terminal (piped, captured), wide enough for the tables


def _console(json_out: Path | None) -> Console:
    """The tables' console: stderr when the figures go to stdout, so that they parse as JSON."""
    stderr = to_stdout(json_out)
    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(width=REPORT_WIDTH, stderr=stderr)


JsonOpt = Annotated[Path | None, json_option("the figures too")]


def _preflight(backends: tuple[str, ...], postgres_url: str) -> None:
    """Exit before any work if PostgreSQL cannot be used (3); --json's directory is checked as parsed."""
    if "postgres" in backends:
        from chargeshare.benchmarks.databases import BenchUnavailable, check_postgres

        try:
            check_postgres(postgres_url)
        except BenchUnavailable as exc:
            raise Problem(str(exc), ENVIRONMENT) from exc


def _write_json(console: Console, out: Path | None, data: dict[str, Any]) -> None:
    if out is not None:
        write_output(out, json.dumps(data, indent=2))
        chatter(console).print(f"figures written to {out}")


@app.command("geo")
def geo(
    chargers: Annotated[int, typer.Option(help="Chargers in the fleet.", min=100, max=2_000_000)] = 100_000,
    backend: BackendOpt = Backend.SQLITE,
    queries: Annotated[int, typer.Option(help="Timed queries per kind and path.", min=1, max=20_000)] = 200,
    seed: Annotated[int, typer.Option(help="Seed for the fleet and the queries.")] = 1,
    postgres_url: PostgresOpt = DEFAULT_POSTGRES_ADMIN_URL,
    json_out: JsonOpt = None,
) -> None:
    """Map search latency (bbox and radius, with filters), the store's search against the best
    hand-written SQL for the same answer.

    Reports p50/p99 and their ratios (targets: ours <= 1.5x best, p99 <= 20 ms). Exits 0 whatever the ratios,
    2 on bad arguments or when PostgreSQL is asked for and cannot be used.
    """
    from chargeshare.benchmarks import geo as geo_bench

    console = _console(json_out)
    backends = backend.backends()
    _preflight(backends, postgres_url)
    params = geo_bench.GeoParams(chargers, backends, queries, seed, postgres_url)
    chatter(console).print(
        f"bench geo: {chargers:,} chargers, {queries} queries per kind, seed {seed}, on {', '.join(backends)}"
    )
    report = geo_bench.run_geo(params, chatter(console))
    geo_bench.render(report, console)
    _write_json(console, json_out, report.to_dict())


@app.command("race")
def race(
    attempts: Annotated[
        int, typer.Option(help="Booking attempts on the one connector.", min=1, max=20_000)
    ] = 1000,
    backend: BackendOpt = Backend.SQLITE,
    locks: Annotated[Locks, typer.Option(help="Redis booking locks in front of the database.")] = Locks.BOTH,
    threads: Annotated[int, typer.Option(help="Concurrent threads.", min=1, max=64)] = 8,
    redis_url: Annotated[
        str, typer.Option(help="Redis for PostgreSQL with locks on (fakeredis if unreachable).")
    ] = DEFAULT_REDIS_URL,
    postgres_url: PostgresOpt = DEFAULT_POSTGRES_ADMIN_URL,
    json_out: JsonOpt = None,
) -> None:
    """Concurrent bookings for one connector through the service layer, per backend and lock mode.

    Exits 1 unless every run has exactly one winner and exactly one card hold; 2 on bad arguments or
    when PostgreSQL is asked for and cannot be used.
    """
    from chargeshare.benchmarks import race as race_bench

    console = _console(json_out)
    backends = backend.backends()
    _preflight(backends, postgres_url)
    params = race_bench.RaceParams(attempts, backends, locks.modes(), threads, redis_url, postgres_url)
    results = race_bench.run_races(params, chatter(console))
    race_bench.render(results, console)
    ok = all(r.ok for r in results)
    _write_json(console, json_out, {"benchmark": "race", "ok": ok, "runs": [r.to_dict() for r in results]})
    if not ok:
        console.print("[red]a race did not end with exactly one winner and one hold[/]")
        raise typer.Exit(1)
    console.print("[green]every race: one winner, one hold[/]")


class OcppBackend(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"


def _sizes(text: str) -> tuple[int, ...]:
    from chargeshare.benchmarks.ocpp import MAX_CHARGERS

    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(f"expected numbers separated by commas, got {text!r}") from None
    if not sizes or any(not 1 <= n <= MAX_CHARGERS for n in sizes):
        raise typer.BadParameter(f"each size must be between 1 and {MAX_CHARGERS:,}")
    return sizes


def _servers(text: str) -> tuple[str, ...]:
    from chargeshare.benchmarks.ocpp import TARGETS

    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names or any(n not in TARGETS for n in names) or len(set(names)) != len(names):
        raise typer.BadParameter(f"each of {', '.join(TARGETS)} at most once, comma-separated")
    return tuple(t for t in TARGETS if t in names)


def _counts(text: str) -> tuple[int, ...]:
    from chargeshare.benchmarks.ocpp_cluster import MAX_PROCESSES

    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(f"expected numbers separated by commas, got {text!r}") from None
    if not counts or any(not 1 <= n <= MAX_PROCESSES for n in counts) or len(set(counts)) != len(counts):
        raise typer.BadParameter(f"each process count once, between 1 and {MAX_PROCESSES}")
    return counts


def _frames(messages: int | None) -> str:
    from chargeshare.benchmarks.ocpp import FRAMES_PER_CHARGER

    return f"{FRAMES_PER_CHARGER} frames per charger" if messages is None else f"{messages:,} frames"


def _ocpp_processes(
    console: Console,
    sizes: tuple[int, ...],
    counts: tuple[int, ...],
    backend: OcppBackend | None,
    postgres_url: str,
    redis_url: str,
    messages: int | None,
    throughput_limit: float,
    json_out: Path | None,
) -> None:
    from chargeshare.benchmarks import ocpp as ocpp_bench
    from chargeshare.benchmarks import ocpp_cluster

    if backend is OcppBackend.SQLITE:
        console.print("[red]error:[/] --processes needs PostgreSQL (several processes share one database)")
        raise typer.Exit(2)
    if min(sizes) < max(counts):
        console.print("[red]error:[/] every process needs a charger: more chargers than processes")
        raise typer.Exit(2)
    _preflight(("postgres",), postgres_url)
    try:
        ocpp_bench.check_messages(sizes, messages)
        ocpp_bench.ensure_file_limit(max(sizes))
    except ocpp_bench.BenchUnfit as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    try:
        ocpp_cluster.flush_redis(redis_url)
    except Exception as exc:
        raise Problem(f"Redis at {redis_url} cannot be used: {exc}", ENVIRONMENT) from exc
    params = ocpp_cluster.ClusterParams(sizes, counts, messages, postgres_url, redis_url, throughput_limit)
    chatter(console).print(
        f"bench ocpp: {', '.join(f'{n:,}' for n in sizes)} chargers over "
        f"{', '.join(map(str, counts))} serve process(es), {_frames(messages)}, on postgres"
    )
    report = ocpp_cluster.run_cluster(params, chatter(console))
    ocpp_cluster.render_cluster(report, console)
    _write_json(console, json_out, report.to_dict())
    if not report.ok:
        console.print("[red]a call or command went unanswered, or a charger's last reading is not held[/]")
        raise typer.Exit(1)


@app.command("ocpp")
def ocpp(
    chargers: Annotated[
        str, typer.Option(help="Connected chargers per run, comma-separated (e.g. 1000,5000).")
    ] = "1000,5000",
    messages: Annotated[
        int | None,
        typer.Option(
            help="Frames in the throughput phase, over all chargers.",
            min=1,
            max=1_000_000,
            show_default="20 per charger of each size",
        ),
    ] = None,
    paced: Annotated[
        float,
        duration_option(
            "Length of the paced phase (1 MeterValues per --paced-interval per charger); 0 skips it.",
            "s",
            default_s=30,
            max_s=600,
        ),
    ] = 30.0,
    paced_interval: Annotated[
        float,
        duration_option(
            "Each charger's interval between readings in the paced phase (and at most this between "
            "frames in the slow-provider phase).",
            "s",
            default_s=10,
            min_s=1,
            max_s=600,
        ),
    ] = 10.0,
    servers: Annotated[
        str,
        typer.Option(
            help="Which servers to run, comma-separated: ours, baseline (the library's defaults), tuned "
            "(the library at its best settings); ratios need ours and one of the others."
        ),
    ] = "ours,baseline,tuned",
    throughput_limit: Annotated[
        float,
        duration_option("Time limit of the throughput phase.", "s", default_s=120, min_s=1, max_s=1800),
    ] = 120.0,
    slow_provider: Annotated[
        float,
        duration_option(
            "Ours only: the payment provider answers captures this late while 1% of the chargers stop "
            "and the rest keep sending; 0 skips the phase.",
            "s",
            default_s=12,
            max_s=120,
        ),
    ] = 12.0,
    backend: Annotated[
        OcppBackend | None,
        typer.Option(help="Our server's database.", show_default="sqlite; postgres with --processes"),
    ] = None,
    postgres_url: PostgresOpt = DEFAULT_POSTGRES_ADMIN_URL,
    processes: Annotated[
        str | None,
        typer.Option(
            help="Instead: ours as N `serve` processes on PostgreSQL + Redis, one run per count, "
            "comma-separated (e.g. 1,2): round trips/s per process and cross-process command latency."
        ),
    ] = None,
    redis_url: Annotated[
        str, typer.Option(help="With --processes: the Redis database the processes share (flushed per run).")
    ] = DEFAULT_OCPP_REDIS_URL,
    json_out: JsonOpt = None,
) -> None:
    """OCPP 1.6J round trips/s and ack latency: `chargeshare serve`'s stack with persistence on, against a
    central system on the `ocpp` library's defaults, under the same load in the same run.

    Reports the ratio (target: ours >= 2x), ours' paced p99 (target: < 50 ms at 5,000 chargers), and the
    other chargers' p99 while captures are stuck at a slow provider, beside the same load just before
    (target: < 50 ms at 1,000 chargers with a 12 s provider).

    With --processes (PostgreSQL only): N `chargeshare serve` processes on one database and one Redis,
    charger i on process i % N; round trips/s in total and per process (target: 2 processes >= 1.6x
    one), and an operator command's round trip through the process holding the charger and through
    another one (target: cross-process p99 < 100 ms). The baseline and the paced and slow-provider
    phases are not run then.

    Exits 1 if a call or command went unanswered or a server does not hold a charger's last
    acknowledged reading, 2 on bad arguments, too low an open-files limit, or an unusable PostgreSQL.
    """
    from chargeshare.benchmarks import ocpp as ocpp_bench

    console = _console(json_out)
    sizes = _sizes(chargers)
    targets = _servers(servers)
    if processes is not None:
        _ocpp_processes(
            console,
            sizes,
            _counts(processes),
            backend,
            postgres_url,
            redis_url,
            messages,
            throughput_limit,
            json_out,
        )
        return
    backend = backend or OcppBackend.SQLITE
    _preflight((backend.value,), postgres_url)
    try:
        ocpp_bench.check_messages(sizes, messages, paced, paced_interval)
        ocpp_bench.ensure_file_limit(max(sizes))
    except ocpp_bench.BenchUnfit as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    params = ocpp_bench.OcppParams(
        sizes,
        messages,
        paced,
        backend.value,
        postgres_url,
        throughput_limit,
        pace_interval_s=paced_interval,
        slow_provider_s=slow_provider,
        servers=targets,
    )
    chatter(console).print(
        f"bench ocpp: {', '.join(f'{n:,}' for n in sizes)} chargers, {_frames(messages)}, "
        f"paced {paced:g} s at 1 reading per {paced_interval:g} s, slow provider {slow_provider:g} s, "
        f"servers {', '.join(targets)}; ours on {backend.value}"
    )
    report = ocpp_bench.run_ocpp(params, chatter(console))
    ocpp_bench.render(report, console)
    _write_json(console, json_out, report.to_dict())
    if not report.ok:
        console.print("[red]a call went unanswered, or a server does not hold a charger's last reading[/]")
        raise typer.Exit(1)


@app.command("des")
def des(
    chargers: Annotated[int, typer.Option(help="Chargers in the fleet.", min=1, max=100_000)] = 10_000,
    duration: Annotated[
        float, duration_option("Simulated time.", "h", default_s=86_400, min_s=360, max_s=7 * 86_400)
    ] = 86_400.0,
    drivers: Annotated[
        int | None, typer.Option(help="Drivers.", show_default="one per charger", min=0, max=200_000)
    ] = None,
    heartbeat: Annotated[
        float,
        duration_option(
            "Heartbeat interval the backend hands out (sent only when idle).", "s", default_s=3_600, min_s=60
        ),
    ] = 3_600.0,
    meter_interval: Annotated[
        float, duration_option("MeterValues interval while charging.", "s", default_s=900, min_s=60)
    ] = 900.0,
    radius_km: Annotated[float, typer.Option(help="Radius the fleet and drivers spread over.", min=1)] = 30.0,
    seed: Annotated[int, typer.Option(help="Seed for the fleet, drivers and the bare loop.")] = 1,
    cprofile: Annotated[
        bool, typer.Option("--cprofile", help="Also show where the time goes (cProfile).")
    ] = False,
    json_out: JsonOpt = None,
) -> None:
    """The discrete-event engine at fleet scale: simulated events per second and wall time, beside a
    bare SimPy loop of the same event count in the same run.

    Exits 1 if the run's invariants fail, 2 on bad arguments; the figures themselves never fail it.
    """
    import logging

    from simulators.des import bench as des_bench

    # As `simulate`: the services' warnings (a charger refusing a command) stay out of the figures.
    configure_logging(logging.ERROR)
    console = _console(json_out)
    hours = duration / 3600
    params = des_bench.DesBenchParams(
        chargers, drivers, hours, round(heartbeat), round(meter_interval), radius_km, seed, cprofile
    )
    chatter(console).print(f"bench des: {chargers:,} chargers for {hours:g} simulated hours, seed {seed}")
    result = des_bench.run_bench(params)
    des_bench.render(result, console)
    _write_json(console, json_out, result.to_dict())
    if not result.invariants_ok:
        console.print("[red]the simulated day broke an invariant[/]")
        raise typer.Exit(1)
