"""`chargeshare bench`: benchmarks that report ratios against a baseline measured in the same run."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from chargeshare.benchmarks import geo as geo_bench
from chargeshare.benchmarks import race as race_bench
from chargeshare.benchmarks.databases import DEFAULT_POSTGRES_ADMIN_URL, BenchUnavailable, check_postgres

app = typer.Typer(
    help="Benchmarks: map search against raw SQL, and the one-connector booking race.",
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


def _console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=REPORT_WIDTH)


JsonOpt = Annotated[Path | None, typer.Option("--json", help="Also write the figures as JSON here.")]


def _preflight(console: Console, backends: tuple[str, ...], postgres_url: str, out: Path | None) -> None:
    """Exit 2 before any work if the output cannot be written or PostgreSQL cannot be used."""
    if out is not None and not out.parent.is_dir():
        console.print(f"[red]error:[/] directory {out.parent} does not exist")
        raise typer.Exit(2)
    if "postgres" in backends:
        try:
            check_postgres(postgres_url)
        except BenchUnavailable as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from exc


def _write_json(console: Console, out: Path | None, data: dict[str, Any]) -> None:
    if out is not None:
        out.write_text(json.dumps(data, indent=2) + "\n")
        console.print(f"figures written to {out}")


@app.command("geo")
def geo(
    chargers: Annotated[int, typer.Option(help="Chargers in the fleet.", min=100, max=2_000_000)] = 100_000,
    backend: BackendOpt = Backend.SQLITE,
    queries: Annotated[int, typer.Option(help="Timed queries per kind and path.", min=1, max=20_000)] = 200,
    seed: Annotated[int, typer.Option(help="Seed for the fleet and the queries.")] = 1,
    postgres_url: PostgresOpt = DEFAULT_POSTGRES_ADMIN_URL,
    json_out: JsonOpt = None,
) -> None:
    """Map search latency (bbox and radius), the store's search against hand-written SQL.

    Reports p50/p99 and their ratios (target: ours <= 1.5x raw). Exits 0 whatever the ratios,
    2 on bad arguments or when PostgreSQL is asked for and cannot be used.
    """
    console = _console()
    backends = backend.backends()
    _preflight(console, backends, postgres_url, json_out)
    params = geo_bench.GeoParams(chargers, backends, queries, seed, postgres_url)
    console.print(
        f"bench geo: {chargers:,} chargers, {queries} queries per kind, seed {seed}, on {', '.join(backends)}"
    )
    report = geo_bench.run_geo(params, console)
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
    ] = race_bench.DEFAULT_REDIS_URL,
    postgres_url: PostgresOpt = DEFAULT_POSTGRES_ADMIN_URL,
    json_out: JsonOpt = None,
) -> None:
    """Concurrent bookings for one connector through the service layer, per backend and lock mode.

    Exits 1 unless every run has exactly one winner and exactly one card hold; 2 on bad arguments or
    when PostgreSQL is asked for and cannot be used.
    """
    console = _console()
    backends = backend.backends()
    _preflight(console, backends, postgres_url, json_out)
    params = race_bench.RaceParams(attempts, backends, locks.modes(), threads, redis_url, postgres_url)
    results = race_bench.run_races(params, console)
    race_bench.render(results, console)
    ok = all(r.ok for r in results)
    _write_json(console, json_out, {"benchmark": "race", "ok": ok, "runs": [r.to_dict() for r in results]})
    if not ok:
        console.print("[red]a race did not end with exactly one winner and one hold[/]")
        raise typer.Exit(1)
    console.print("[green]every race: one winner, one hold[/]")
