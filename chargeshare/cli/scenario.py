"""`chargeshare scenario`: list, validate and run scenario files (what CI pipelines call)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from chargeshare.cli.errors import doing, run_async
from chargeshare.cli.options import (
    chatter,
    configure_logging,
    html_option,
    human_output,
    json_list_option,
    json_option,
    junit_option,
    output_option,
    write_output,
    write_rows,
)
from chargeshare.cli.simulate import PROCESSES, REDIS_URL, note_ignored_services
from chargeshare.cli.simulate_des import Engine

if TYPE_CHECKING:
    from simulators.live import Progress
    from simulators.scenario import Scenario, ScenarioError
    from simulators.scenario_runner import ScenarioResult
    from simulators.timeline import Timeline

app = typer.Typer(
    help="Declarative scenarios: fleet, drivers, faults and expectations.", no_args_is_help=True
)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

DEFAULT_DIR = Path("scenarios")
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


class Backend(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"


def _load_all(paths: list[Path]) -> list[Scenario]:
    """Load every file first: one bad file stops everything before anything runs."""
    scenarios, invalid = _check_all(paths)
    if invalid:
        raise typer.Exit(2)
    return scenarios


def _check_all(
    paths: list[Path],
    ok: Callable[[Scenario], None] | None = None,
    invalid_file: Callable[[Path, ScenarioError], None] | None = None,
) -> tuple[list[Scenario], int]:
    """Every file's scenario, and how many files were invalid (each of their mistakes printed)."""
    from simulators.scenario import ScenarioError, discover, load

    try:
        files = discover(paths)
    except ScenarioError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    if not files:
        err.print(f"[red]error:[/] no scenario files in {escape(', '.join(map(str, paths)))}")
        raise typer.Exit(2)
    scenarios, invalid = [], 0
    for f in files:
        try:
            scenario = load(f)
        except ScenarioError as exc:
            invalid += 1
            for line in str(exc).splitlines():
                err.print(f"[red]invalid:[/] {escape(line)}")  # escaped: "[...]" in a message stays
            if invalid_file is not None:
                invalid_file(f, exc)
            continue
        scenarios.append(scenario)
        if ok is not None:
            ok(scenario)
    return scenarios, invalid


@app.command("list")
def list_(
    directory: Annotated[Path, typer.Argument(help="Where to look.")] = DEFAULT_DIR,
    json_out: Annotated[Path | None, json_list_option()] = None,
) -> None:
    """List the scenarios in a directory."""
    scenarios = _load_all([directory])
    if json_out is not None:
        rows = [
            {
                "name": s.name,
                "file": str(s.path),
                "chargers": s.params.chargers,
                "drivers": s.params.drivers,
                "duration_s": s.params.duration_s,
                "description": s.description,
            }
            for s in scenarios
        ]
        write_rows(json_out, rows)
        return
    table = Table("name", "file", "chargers", "drivers", "minutes", "description")
    for s in scenarios:
        p = s.params
        table.add_row(
            s.name, str(s.path), str(p.chargers), str(p.drivers), str(p.duration_s // 60), s.description
        )
    console.print(table)


@app.command("validate")
def validate(
    files: Annotated[list[Path], typer.Argument(help="Scenario files or directories.")],
    json_out: Annotated[
        Path | None,
        output_option("Write each file's verdict and mistakes as JSON here (-: to stdout).", "--json"),
    ] = None,
) -> None:
    """Check scenario files: every mistake of each file with its line and field, an ok line per
    sound file, then how many were sound. Exit 2 if any file is invalid."""
    rows: list[dict[str, Any]] = []
    with human_output(console, json_out) as out:
        note = chatter(out)

        def ok(s: Scenario) -> None:
            note.print(f"[green]ok[/] {escape(str(s.path))} ({escape(s.name)})")
            rows.append({"file": str(s.path), "ok": True, "name": s.name, "mistakes": []})

        def invalid_file(path: Path, exc: ScenarioError) -> None:
            # A file that is no YAML at all has one mistake, in the message alone.
            found = [asdict(m) for m in exc.mistakes] or [{"line": None, "field": None, "message": str(exc)}]
            rows.append({"file": str(path), "ok": False, "name": None, "mistakes": found})

        scenarios, invalid = _check_all(files, ok, invalid_file)
        total = len(scenarios) + invalid
        verdict = f"{total} {'file' if total == 1 else 'files'}: {len(scenarios)} ok, {invalid} invalid"
        out.print(verdict, style="red" if invalid else "green")
    if json_out is not None:
        write_rows(json_out, rows)
    if invalid:
        raise typer.Exit(2)


@app.command("schema")
def schema() -> None:
    """Print the JSON Schema scenario files follow."""
    from simulators.scenario import SCHEMA

    console.print_json(json.dumps(SCHEMA))


@contextlib.contextmanager
def _database(backend: Backend, postgres_url: str) -> Iterator[str | None]:
    from chargeshare.adapters.pg_admin import temporary_database

    if backend is Backend.SQLITE:
        yield None
        return
    with temporary_database(postgres_url, prefix="cs_scenario") as url:
        yield url


def _sampler(timeline: Timeline) -> Progress:
    def collect(_elapsed_s: float, info: dict[str, Any]) -> None:
        timeline.add(info["sample"])

    return collect


@app.command("run")
def run(
    paths: Annotated[list[Path], typer.Argument(help="Scenario files or directories.")],
    junit: Annotated[Path | None, junit_option("one test case per scenario")] = None,
    json_out: Annotated[Path | None, json_option("every run's full report")] = None,
    html: Annotated[
        Path | None,
        html_option("an index of the scenarios run (verdicts, expectations) with each one's report"),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Override every scenario's seed.")] = None,
    backend: Annotated[Backend, typer.Option(help="Store for the backend under test.")] = Backend.SQLITE,
    postgres_url: Annotated[
        str, typer.Option(envvar="CHARGESHARE_POSTGRES_ADMIN_URL", help="Server for --backend postgres.")
    ] = DEFAULT_POSTGRES,
    trace_dir: Annotated[
        Path | None,
        typer.Option(
            help="Record each scenario's frames and API calls here as NAME.jsonl (made if missing)."
        ),
    ] = None,
    plot_dir: Annotated[
        Path | None,
        typer.Option(
            help="Plot each scenario's utilisation, kW and revenue here as NAME.png, and a run with "
            "feeders' load against their limits as NAME-feeders.png (made if missing)."
        ),
    ] = None,
    processes: Annotated[int | None, PROCESSES] = None,
    redis_url: Annotated[str | None, REDIS_URL] = None,
    engine: Annotated[
        Engine | None,
        typer.Option(
            help="Run every scenario under this engine: live (real WebSockets and HTTP on the file's "
            "scaled clock) or des (SimPy virtual time).",
            show_default="each file's engine",
        ),
    ] = None,
) -> None:
    """Run scenarios; exit 1 if any invariant or expectation fails, 2 if a file is invalid."""
    configure_logging(logging.ERROR)
    scenarios = _load_all(paths)
    if engine is not None:
        scenarios = [replace(s, engine=engine.value) for s in scenarios]
    with human_output(console, json_out) as out:
        _run(
            out,
            scenarios,
            junit,
            json_out,
            html,
            seed,
            backend,
            postgres_url,
            trace_dir,
            plot_dir,
            processes,
            redis_url,
        )


def _run(
    console: Console,
    scenarios: list[Scenario],
    junit: Path | None,
    json_out: Path | None,
    html: Path | None,
    seed: int | None,
    backend: Backend,
    postgres_url: str,
    trace_dir: Path | None,
    plot_dir: Path | None,
    processes: int | None,
    redis_url: str | None,
) -> None:
    from simulators.des import DesParams
    from simulators.des.central import NotSupportedInDes
    from simulators.des.engine import check_supported
    from simulators.live import problems
    from simulators.scenario_runner import junit_xml, report_json, run_scenario
    from simulators.timeline import Timeline

    for s in scenarios:
        params = replace(
            s.params,
            processes=s.params.processes if processes is None else processes,
            redis_url=redis_url,
            database_url="postgresql://" if backend is Backend.POSTGRES else s.params.database_url,
        )
        wrong = problems(params, trace=trace_dir is not None)
        if s.engine == Engine.DES:
            if params.processes:
                wrong.append("the DES engine runs the backend in its own process")
            if trace_dir is not None:
                wrong.append("--trace-dir records a live run: a DES scenario cannot be traced")
            try:
                check_supported(DesParams.from_live(params))
            except NotSupportedInDes as exc:
                wrong.append(str(exc))
        if wrong:
            err.print(f"[red]error:[/] {s.name}: {escape('; '.join(wrong))}")
            raise typer.Exit(2)
    for directory in (trace_dir, plot_dir):
        if directory is not None:
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                err.print(f"[red]error:[/] cannot make directory {directory}: {exc.strerror or exc}")
                raise typer.Exit(2) from exc
    note_ignored_services()
    note = chatter(console)
    results: list[ScenarioResult] = []
    timelines: list[Timeline] = []
    sampled = plot_dir is not None or html is not None
    for i, s in enumerate(scenarios, 1):
        with note.status(
            f"[{i}/{len(scenarios)}] {s.name}: {s.params.chargers} chargers, "
            f"{s.params.drivers} drivers, {s.params.duration_s // 60} simulated minutes"
        ):
            timeline = Timeline()
            with doing(f"{s.name}: could not run"), _database(backend, postgres_url) as url:
                result = run_async(
                    run_scenario(
                        s,
                        seed=seed,
                        database_url=url,
                        progress=_sampler(timeline) if sampled else None,
                        trace=None if trace_dir is None else trace_dir / f"{s.name}.jsonl",
                        processes=processes,
                        redis_url=redis_url,
                    )
                )
        results.append(result)
        timelines.append(timeline)
        if plot_dir is not None:
            from simulators.plots import marks_of, write_plot  # matplotlib loads only when asked for

            marks = marks_of(result.report.params)
            write_plot(plot_dir / f"{s.name}.png", timeline, title=f"Scenario {s.name}", marks=marks)
            if result.report.grid_feeders:  # a run with feeders: their load against their limits
                from simulators.grid_plot import write_feeder_plot

                feeders = result.report.grid_feeders
                write_feeder_plot(
                    plot_dir / f"{s.name}-feeders.png", feeders, title=f"Scenario {s.name}: feeders"
                )
        if result.ok:
            note.print(f"[green]PASS[/] {s.name} ({result.report.wall_s:.1f} s)")
        else:  # a failure is part of the verdict, -q or not
            console.print(f"[red]FAIL[/] {s.name} ({result.report.wall_s:.1f} s)")
        for failure in result.failures:
            console.print(f"     {escape(failure)}")
    if junit is not None:
        write_output(junit, junit_xml(results))
    if json_out is not None:
        write_output(json_out, report_json(results))
    if html is not None:
        write_output(html, _index(results, timelines))
        chatter(console).print(f"HTML report written to {html}")
    passed = sum(r.ok for r in results)
    console.print(f"{passed} passed, {len(results) - passed} failed")
    if passed != len(results):
        raise typer.Exit(1)


def _index(results: list[ScenarioResult], timelines: list[Timeline]) -> str:
    from simulators.html_report import IndexEntry, RunPage, index_html
    from simulators.plots import marks_of

    entries = []
    for r, timeline in zip(results, timelines, strict=True):
        p = r.scenario.params
        page = RunPage(
            f"Scenario {r.scenario.name}",
            r.report,
            timeline,
            marks_of(r.report.params),
            expectations=r.expectations,
            lead=f"{r.scenario.description} ({p.chargers} chargers, {p.drivers} drivers, "
            f"{p.duration_s // 60} simulated minutes)",
        )
        entries.append(IndexEntry(r.scenario.name, str(r.scenario.path), page))
    return index_html(f"chargeshare scenario run: {len(results)} scenarios", entries)
