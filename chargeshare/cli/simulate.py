"""`chargeshare simulate`: a live fleet against the embedded backend, then a summary and invariants."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from chargeshare.cli.compare_pricing import price_range
from chargeshare.cli.errors import INTERRUPTED, Problem
from chargeshare.cli.options import (
    chatter,
    configure_logging,
    duration_option,
    format_duration,
    html_option,
    human_output,
    json_option,
    output_option,
    plot_option,
    quiet,
    write_output,
)
from chargeshare.cli.simulate_des import LIVE_MAX_CHARGERS, Engine
from chargeshare.domain.dynamic_pricing import PricingMode
from chargeshare.domain.money import format_gbp, format_kwh
from chargeshare.ocpp import VERSIONS, OcppVersion

if TYPE_CHECKING:
    from simulators.live import LiveParams
    from simulators.report import RunReport
    from simulators.scenario import Expectation
    from simulators.timeline import Sample, Timeline

# The names of simulators.fleet.CITIES, here so that --help loads no simulator (a test keeps them equal).
CITIES = ("bristol", "london", "manchester", "leeds", "glasgow")


PROCESSES = typer.Option(
    help="Run the backend as this many `chargeshare serve` processes (several behind HAProxy; 0: in "
    "this process).",
    show_default="the scenario's, or 0",
    min=0,
    max=16,
)
REDIS_URL = typer.Option(
    help="Redis the backend processes share (needed by more than one), e.g. redis://127.0.0.1:6379/0."
)
FLEET_FLAGS = ("chargers", "drivers", "duration", "speed", "city", "locks")


def simulate(
    ctx: typer.Context,
    scenario: Annotated[
        Path | None,
        typer.Argument(
            help="A scenario file to run instead of the default fleet; fleet flags given with it "
            "override the file's values, and the output and --json report say which."
        ),
    ] = None,
    chargers: Annotated[
        int, typer.Option(help=f"Virtual chargers (live: at most {LIVE_MAX_CHARGERS}).", min=1, max=100_000)
    ] = 20,
    drivers: Annotated[int, typer.Option(help="Scripted drivers.", min=0, max=20000)] = 50,
    duration: Annotated[
        float, duration_option("Simulated time.", "m", default_s=7200, min_s=60, max_s=7 * 86_400)
    ] = 7200.0,
    seed: Annotated[
        int | None,
        typer.Option(help="Seed for fleet, drivers and behaviour.", show_default="the scenario's, or 7"),
    ] = None,
    speed: Annotated[float, typer.Option(help="Simulated seconds per real second.", min=1, max=3600)] = 240.0,
    city: Annotated[str, typer.Option(help=f"One of: {', '.join(CITIES)}.")] = "bristol",
    locks: Annotated[
        bool, typer.Option("--locks/--no-locks", help="Redis booking locks (fakeredis).")
    ] = True,
    protocols: Annotated[
        str | None,
        typer.Option(
            help="OCPP versions the chargers speak, dealt out in turn, comma-separated "
            f"({', '.join(VERSIONS)}); e.g. 1.6,2.0.1,2.1 mixes the three.",
            show_default="the scenario's, or 1.6",
        ),
    ] = None,
    json_out: Annotated[Path | None, json_option("the full report")] = None,
    html: Annotated[
        Path | None, html_option("the run's report: summary, invariants, plots, faults, chargers")
    ] = None,
    trace: Annotated[
        Path | None,
        output_option(
            "Record every OCPP frame and API call here as JSONL (for `chargeshare replay`).", "--trace"
        ),
    ] = None,
    plot: Annotated[Path | None, plot_option("utilisation, kW drawn and revenue over time")] = None,
    processes: Annotated[int | None, PROCESSES] = None,
    redis_url: Annotated[str | None, REDIS_URL] = None,
    engine: Annotated[
        Engine | None,
        typer.Option(
            help="live: real WebSockets and HTTP on a scaled clock; des: SimPy virtual time, in-process "
            "links, the same report bytes for the same seed.",
            show_default="the scenario's engine, or live",
        ),
    ] = None,
    pricing: Annotated[
        PricingMode | None,
        typer.Option(
            help="How hosts price: flat (each charger's listed price) or dynamic (with the time of day, "
            "the area's bookings, the grid and the weather, within each host's bounds).",
            show_default="the scenario's, or flat",
        ),
    ] = None,
    max_price: Annotated[
        str | None,
        typer.Option(
            help="The most each driver pays per kWh, drawn from MIN-MAX pence, e.g. 25-50.",
            show_default="the scenario's, or any price",
        ),
    ] = None,
) -> None:
    """Run a simulation: live over real loopback WebSockets and HTTP on a scaled clock (default), or
    in SimPy virtual time with --engine des for large fleets and long horizons.

    It brings its own in-memory database, fakeredis and simulated payments (CHARGESHARE_DATABASE_URL,
    CHARGESHARE_REDIS_URL and CHARGESHARE_STRIPE_API_KEY are ignored). Exits 1 if any invariant fails,
    2 on bad arguments, 130 on Ctrl-C (after writing --json marked "complete": false).
    """
    with human_output(Console(), json_out) as console:
        _simulate(
            console,
            scenario,
            fleet={
                "chargers": chargers,
                "drivers": drivers,
                "duration_s": round(duration),
                "speed": speed,
                "city": city,
                "locks": locks,
            },
            given=given_flags(ctx, FLEET_FLAGS),
            seed=seed,
            protocols=protocols,
            json_out=json_out,
            html=html,
            trace=trace,
            plot=plot,
            processes=processes,
            redis_url=redis_url,
            engine=engine,
            pricing=pricing,
            max_price=price_range(max_price),
        )


def _simulate(
    console: Console,
    scenario: Path | None,
    *,
    fleet: dict[str, Any],
    given: set[str],
    seed: int | None,
    protocols: str | None,
    json_out: Path | None,
    html: Path | None,
    trace: Path | None,
    plot: Path | None,
    processes: int | None,
    redis_url: str | None,
    engine: Engine | None,
    pricing: PricingMode | None = None,
    max_price: tuple[int, int] | None = None,
) -> None:
    city = fleet["city"]
    if city not in CITIES:
        console.print(f"[red]error:[/] unknown city {city!r}; choose one of {', '.join(CITIES)}")
        raise typer.Exit(2)
    words = None if protocols is None else [v.strip() for v in protocols.split(",")]
    if words is not None and (not words or any(v not in VERSIONS for v in words)):
        console.print(
            f"[red]error:[/] --protocols {protocols!r}: a comma-separated list of {', '.join(VERSIONS)}"
        )
        raise typer.Exit(2)
    versions = None if words is None else tuple(OcppVersion(v) for v in words)
    from chargeshare.cli.errors import run_async
    from chargeshare.cli.live_view import LiveView
    from chargeshare.cli.simulate_des import run_des_command
    from simulators.live import LiveParams, run_live
    from simulators.scenario import ScenarioError, load
    from simulators.timeline import Timeline

    note_ignored_services()
    configure_logging(logging.ERROR)
    note = chatter(console)
    params = LiveParams(**fleet, seed=7 if seed is None else seed)
    overrides: dict[str, Any] = {}
    expectations: tuple[Expectation, ...] = ()
    if scenario is not None:
        try:
            loaded = load(scenario)
        except ScenarioError as exc:
            for line in str(exc).splitlines():
                console.print(f"[red]invalid:[/] {escape(line)}")
            raise typer.Exit(2) from exc
        flags = {name: value for name, value in fleet.items() if name.removesuffix("_s") in given}
        params, overrides = override(loaded.params, {**flags, "seed": seed})
        if versions is not None and versions != params.fleet.protocols:
            overrides["protocols"] = {"file": ",".join(params.fleet.protocols), "given": ",".join(versions)}
        expectations = loaded.expectations
        engine = engine or Engine(loaded.engine)
        note.print(f"Scenario [bold]{loaded.name}[/]: {loaded.description}")
        for name, change in overrides.items():
            flag, shown = f"--{name.removesuffix('_s')}", {**change}
            if name == "duration_s":
                shown = {k: format_duration(v) for k, v in change.items()}
            note.print(f"[yellow]override:[/] {flag} {shown['given']} (the file says {shown['file']})")
    if versions is not None:
        params = replace(params, fleet=replace(params.fleet, protocols=versions))
    if pricing is not None:
        params = replace(params, fleet=replace(params.fleet, pricing=pricing.value))
    if max_price is not None:
        params = replace(params, behaviour=replace(params.behaviour, max_price=max_price))
    engine = engine or Engine.LIVE
    if processes is not None:
        params = replace(params, processes=processes)
    if redis_url is not None:
        params = replace(params, redis_url=redis_url)
    if engine is Engine.LIVE:
        from simulators.live import problems

        wrong = problems(params, trace=trace is not None)
        if wrong:
            console.print(f"[red]error:[/] {escape('; '.join(wrong))}")
            raise typer.Exit(2)
    minutes = params.duration_s // 60
    real_s = params.duration_s / params.speed
    timeline = Timeline()
    latest: Latest | None = None
    try:
        if engine is Engine.DES:
            sampled = plot is not None or html is not None
            result = run_des_command(console, params, trace=trace, timeline=timeline if sampled else None)
        elif params.chargers > LIVE_MAX_CHARGERS:
            console.print(f"[red]error:[/] live runs at most {LIVE_MAX_CHARGERS} chargers; try --engine des")
            raise typer.Exit(2)
        else:
            note.print(
                f"Simulating {params.chargers} chargers and {params.drivers} drivers around "
                f"{params.city.title()} for {minutes} simulated minutes at {params.speed:g}x "
                f"(about {real_s:.0f} s)"
            )
            if quiet():

                def collect(_elapsed_s: float, info: dict[str, Any]) -> None:
                    timeline.add(info["sample"])

                latest = Latest(collect)
                watch = plot is not None or html is not None or json_out is not None
                result = run_async(run_live(params, latest.update if watch else None, trace=trace))
            else:
                with LiveView(console, minutes=minutes, drivers=params.drivers, timeline=timeline) as view:
                    latest = Latest(view.update)
                    result = run_async(run_live(params, latest.update, trace=trace))
    except KeyboardInterrupt:
        raise interrupted(params, engine, latest, json_out) from None
    result = replace(result, overrides=overrides)
    print_report(console, result)
    if trace is not None:
        note.print(f"trace written to {trace}")
    checks = [e.check(result.summary) for e in expectations]
    title = f"chargeshare simulate: {params.chargers} chargers, seed {params.seed}"
    lead = (
        f"{params.chargers} chargers and {params.drivers} drivers around {params.city.title()} for "
        f"{minutes} simulated minutes, {engine.value} engine"
        + ("" if scenario is None else f", scenario {scenario.name}")
    )
    write_pictures(
        console, result, timeline, title=title, lead=lead, plot=plot, html=html, expectations=checks
    )
    for ok, text in checks:
        (note if ok else console).print(f"{'[green]PASS[/]' if ok else '[red]FAIL[/]'} expectation: {text}")
    if json_out is not None:
        write_output(json_out, result.to_json())
        note.print(f"report written to {json_out}")
    if not result.ok or not all(ok for ok, _ in checks):
        raise typer.Exit(1)


def write_pictures(
    console: Console,
    result: RunReport,
    timeline: Timeline,
    *,
    title: str,
    lead: str,
    plot: Path | None,
    html: Path | None,
    expectations: Sequence[tuple[bool, str]] = (),
) -> None:
    """--plot and --html of a run: its window's end and its faults marked on the plots."""
    if plot is None and html is None:
        return
    from simulators.plots import marks_of

    marks = marks_of(result.params)
    if plot is not None:
        from simulators.plots import write_plot  # matplotlib loads only when a plot is asked for

        write_plot(plot, timeline, title=title, marks=marks)
        chatter(console).print(f"plot written to {plot}")
    if html is not None:
        from simulators.html_report import RunPage, run_html

        page = RunPage(title, result, timeline, marks, expectations=expectations, lead=lead)
        write_output(html, run_html(page))
        chatter(console).print(f"HTML report written to {html}")


def given_flags(ctx: typer.Context, names: tuple[str, ...]) -> set[str]:
    """The options among `names` the user gave (on the command line or from the environment)."""
    return {name for name in names if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"}


def override(params: LiveParams, given: dict[str, Any]) -> tuple[LiveParams, dict[str, Any]]:
    """A scenario file's parameters with the flags given beside it, and what they changed."""
    changes = {
        name: {"file": getattr(params, name), "given": value}
        for name, value in given.items()
        if value is not None and value != getattr(params, name)
    }
    return replace(params, **{name: c["given"] for name, c in changes.items()}), changes


def note_ignored_services() -> None:
    """Say so when the environment names services a simulation does not use (it brings its own)."""
    names = ("CHARGESHARE_DATABASE_URL", "CHARGESHARE_REDIS_URL", "CHARGESHARE_STRIPE_API_KEY")
    ignored = [name for name in names if os.environ.get(name)]
    if ignored:
        Console(stderr=True, soft_wrap=True, highlight=False).print(
            "[yellow]note:[/] simulations bring their own database, fakeredis and simulated payments; "
            f"{', '.join(ignored)} ignored"
        )


class Latest:
    """The live runner's last progress, passed on to `forward`: what an interrupted run can report."""

    def __init__(self, forward: Callable[[float, dict[str, Any]], None]) -> None:
        self.forward = forward
        self.elapsed_s: float | None = None  # simulated seconds, once the run has said
        self.sample: Sample | None = None

    def update(self, elapsed_s: float, info: dict[str, Any]) -> None:
        self.elapsed_s = elapsed_s
        self.sample = info.get("sample", self.sample)
        self.forward(elapsed_s, info)


def interrupted(params: LiveParams, engine: Engine, latest: Latest | None, report: Path | None) -> Problem:
    """The one line for Ctrl-C, after writing what the run got to as a report marked incomplete."""
    from simulators.live import params_dict

    elapsed_s = None if latest is None else latest.elapsed_s
    message = "interrupted"
    if elapsed_s is not None:
        message += f" at simulated minute {elapsed_s / 60:.0f} of {params.duration_s // 60}"
    if report is None:
        return Problem(message, INTERRUPTED)
    body = {
        "complete": False,
        "ok": False,  # nothing was checked: never to be read as a passing run
        "params": {**params_dict(params), "engine": engine.value},
        "simulated_s": None if elapsed_s is None else round(elapsed_s, 1),
        "last_sample": None if latest is None or latest.sample is None else asdict(latest.sample),
        "invariants": [],
        "errors": ["interrupted (Ctrl-C) before the end of the run: invariants not checked"],
    }
    write_output(report, json.dumps(body, indent=2, sort_keys=True))
    return Problem(f"{message}; partial report written to {report} (complete: false)", INTERRUPTED)


# What each `no_charger_because` reason means, for the summary (simulators.driver names them).
NO_CHARGER_WHY = {
    "none_free_nearby": "the map showed no charger online and free for the slot within reach",
    "all_taken": "every charger found was booked by another driver first",
    "rate_limited": "the API refused the booking as too frequent (429)",
    "priced_out": "every charger found was quoted above the most the driver pays",
}


def print_report(console: Console, result: RunReport) -> None:
    """The summary and the invariants as tables, then the verdict; with -q the verdict, the errors
    and the failed checks only."""
    from chargeshare.cli.check_table import check_table

    note = chatter(console)
    s = result.summary
    summary = Table(title="Summary", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    summary.add_row("bookings", str(s["bookings"]))
    summary.add_row("booking conflicts (409)", str(s["booking_conflicts"]))
    summary.add_row("charging sessions", str(s["sessions"]))
    summary.add_row("energy delivered", format_kwh(s["energy_wh"]))
    summary.add_row("captured from drivers", format_gbp(s["captured_pence"]))
    summary.add_row("host payouts", format_gbp(s["host_payouts_pence"]))
    summary.add_row("platform fees (incl. VAT)", format_gbp(s["platform_fees_pence"]))
    summary.add_row("VAT on fees", format_gbp(s["vat_pence"]))
    summary.add_row("card processing (platform's cost)", format_gbp(s["processor_fees_pence"]))
    summary.add_row("faults fired", str(s["faults_fired"]))
    summary.add_row("chargers that went offline", str(s["chargers_went_offline"]))
    summary.add_row("wall time", f"{result.wall_s:.1f} s")
    note.print(summary)
    note.print(count_table("Bookings by status", "status", "bookings", s["bookings_by_status"]))
    note.print(driver_outcomes_table(s))
    if result.ok:
        note.print(check_table("Invariants", "invariant", result.invariants))
    else:  # the failed checks are part of the verdict, -q or not
        console.print(check_table("Invariants", "invariant", result.invariants))
    for err in result.errors:
        console.print(f"[red]error:[/] {escape(err)}")
    console.print("[green]all invariants hold[/]" if result.ok else "[red]invariants failed[/]")


def count_table(title: str, what: str, counted: str, counts: dict[str, int]) -> Table | str:
    if not counts:
        return f"{title}: none"
    table = Table(title=title)
    table.add_column(what)
    table.add_column(counted, justify="right")
    for name, n in counts.items():
        table.add_row(name.replace("_", " "), str(n))
    return table


def driver_outcomes_table(summary: dict[str, Any]) -> Table | str:
    """How each driver's run ended; for those who found no charger, why."""
    outcomes: dict[str, int] = summary["driver_outcomes"]
    if not outcomes:
        return "Driver outcomes: no drivers"
    because: dict[str, int] = summary.get("no_charger_because", {})
    table = Table(title="Driver outcomes")
    table.add_column("outcome")
    table.add_column("drivers", justify="right")
    table.add_column("why")
    for name, n in outcomes.items():
        why = ""
        if name == "no_charger":
            why = "; ".join(f"{k}: {NO_CHARGER_WHY.get(reason, reason)}" for reason, k in because.items())
        table.add_row(name.replace("_", " "), str(n), why)
    return table
