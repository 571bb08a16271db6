"""`chargeshare replay TRACE.jsonl`: drive a fresh backend with a recorded run (or a vendor's charger
trace) and check the same invariants."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    json_option,
    plot_option,
    write_output,
)
from chargeshare.domain.money import format_gbp, format_kwh

if TYPE_CHECKING:
    from chargeshare.bootstrap import App
    from simulators.replay import ReplayReport

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


class Backend(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"


@contextlib.contextmanager
def _database(backend: Backend, postgres_url: str) -> Iterator[str]:
    from chargeshare.adapters.pg_admin import temporary_database
    from chargeshare.bootstrap import MEMORY_DATABASE_URL

    if backend is Backend.SQLITE:
        yield MEMORY_DATABASE_URL
        return
    with temporary_database(postgres_url, prefix="cs_replay") as url:
        yield url


def replay_command(
    trace: Annotated[Path, typer.Argument(help="A JSONL trace (see docs/replay.md).")],
    backend: Annotated[Backend, typer.Option(help="Store for the fresh backend.")] = Backend.SQLITE,
    postgres_url: Annotated[
        str, typer.Option(envvar="CHARGESHARE_POSTGRES_ADMIN_URL", help="Server for --backend postgres.")
    ] = DEFAULT_POSTGRES,
    json_out: Annotated[Path | None, json_option("the replay report")] = None,
    html: Annotated[
        Path | None, html_option("the replay's report: summary, checks, plots, faults, chargers")
    ] = None,
    plot: Annotated[Path | None, plot_option("utilisation, kW and revenue over the replay")] = None,
) -> None:
    """Replay a trace against a fresh backend; exit 1 if an invariant or a charger check fails, 2 if the
    trace is invalid (nothing runs then)."""
    with human_output(Console(soft_wrap=True), json_out) as console:
        _replay(console, trace, backend, postgres_url, json_out, html, plot)


def _replay(
    console: Console,
    trace: Path,
    backend: Backend,
    postgres_url: str,
    json_out: Path | None,
    html: Path | None,
    plot: Path | None,
) -> None:
    from simulators.replay import replay
    from simulators.timeline import Timeline, take_sample
    from simulators.trace import TraceError, read_trace

    try:
        parsed = read_trace(trace)
    except TraceError as exc:
        for line in str(exc).splitlines():
            console.print(f"[red]invalid:[/] {escape(line)}", highlight=False)
        raise typer.Exit(2) from exc
    configure_logging(logging.ERROR)
    timeline = Timeline()
    # Time 0 of the plots is where the recorded run's window began, as in the run's own plots.
    start = parsed.window_start or parsed.start

    def sample(app: App) -> None:
        if start is not None and app.clock.now() >= start:
            timeline.add(take_sample(app, start))

    with doing("could not replay"), _database(backend, postgres_url) as url:
        watch = plot is not None or html is not None
        result = run_async(replay(parsed, database_url=url, sampler=sample if watch else None))
    print_replay(console, result)
    if json_out is not None:
        write_output(json_out, result.to_json())
        chatter(console).print(f"report written to {json_out}")
    if plot is not None or html is not None:
        from simulators.plots import marks_of

        # The recorded run's window and faults, as its trace's header says (a vendor's log has none).
        recorded = parsed.header.get("params")
        marks = marks_of(recorded if isinstance(recorded, dict) else {})
        title = f"Replay of {trace.name}"
        if plot is not None:
            from simulators.plots import write_plot

            write_plot(plot, timeline, title=title, marks=marks)
            chatter(console).print(f"plot written to {plot}")
        if html is not None:
            from simulators.html_report import RunPage, run_html

            notes = [f"not checked: {n}" for n in result.notes]
            notes += [f"differs: {d}" for d in result.divergences[:10]]
            if result.divergence_count > 10:
                notes.append(f"... and {result.divergence_count - 10} more answers unlike the recording")
            page = RunPage(
                title,
                result.run,
                timeline,
                marks,
                extra_checks=result.charger_checks,
                notes=notes,
                lead=f"Replayed {result.fed.get('ocpp', 0)} charger frames, {result.fed.get('http', 0)} API "
                f"calls and {result.fed.get('op', 0)} backend events from {trace.name}",
            )
            write_output(html, run_html(page))
            chatter(console).print(f"HTML report written to {html}")
    if not result.ok:
        raise typer.Exit(1)


def print_replay(console: Console, result: ReplayReport) -> None:
    from chargeshare.cli.check_table import check_table
    from chargeshare.cli.simulate import count_table

    note = chatter(console)
    s = result.run.summary
    fed = result.fed
    note.print(
        f"Replayed {fed.get('ocpp', 0)} charger frames, {fed.get('http', 0)} API calls and "
        f"{fed.get('op', 0)} backend events from {result.trace}"
    )
    summary = Table(title="Summary", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    summary.add_row("bookings", str(s["bookings"]))
    summary.add_row("charging sessions", str(s["sessions"]))
    summary.add_row("energy delivered", format_kwh(s["energy_wh"]))
    summary.add_row("captured from drivers", format_gbp(s["captured_pence"]))
    summary.add_row("host payouts", format_gbp(s["host_payouts_pence"]))
    summary.add_row("answers unlike the recording", str(result.divergence_count))
    note.print(summary)
    note.print(count_table("Bookings by status", "status", "bookings", s["bookings_by_status"]))
    checks = [*result.run.invariants, *result.charger_checks]
    (console if not result.ok else note).print(check_table("Invariants and charger checks", "check", checks))
    for n in result.notes:
        console.print(f"[yellow]not checked:[/] {escape(n)}", highlight=False)
    for d in result.divergences[:10]:
        note.print(f"[yellow]differs:[/] {escape(d)}", highlight=False)
    if result.divergence_count > 10:
        note.print(f"[yellow]... and {result.divergence_count - 10} more (see --json)[/]")
    for err in result.run.errors:
        console.print(f"[red]error:[/] {escape(err)}", highlight=False)
    console.print("[green]all checks hold[/]" if result.ok else "[red]checks failed[/]")
