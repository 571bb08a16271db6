"""`chargeshare compare-pricing`: one UK day under flat and under dynamic pricing, in the DES with the
same seed, and what each earned, how busy the fleet was and how many drivers it served."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from chargeshare.cli.options import (
    chatter,
    duration_option,
    human_output,
    json_option,
    plot_option,
    write_output,
)
from chargeshare.domain.money import format_gbp, format_kwh

if TYPE_CHECKING:
    from simulators.live import LiveParams

DAY_START = "2026-03-04T00:00:00Z"  # a Wednesday in March: GMT, so UK local time is UTC


def price_range(value: str | None) -> tuple[int, int] | None:
    """`MIN-MAX` pence per kWh, e.g. 25-50."""
    if value is None:
        return None
    lo, sep, hi = value.partition("-")
    try:
        low, high = int(lo), int(hi)
    except ValueError:
        low = high = -1
    if not sep or not 0 < low <= high:
        raise typer.BadParameter(f"{value!r}: give MIN-MAX pence per kWh, e.g. 25-50")
    return low, high


def compare_pricing(
    scenario: Annotated[
        Path | None,
        typer.Argument(help="A scenario file whose fleet and drivers to use (its engine and pricing aside)."),
    ] = None,
    chargers: Annotated[
        int, typer.Option(help="Virtual chargers, without a scenario.", min=1, max=100_000)
    ] = 30,
    drivers: Annotated[
        int, typer.Option(help="Scripted drivers, without a scenario.", min=0, max=20_000)
    ] = 240,
    duration: Annotated[
        float, duration_option("Simulated time, without a scenario.", "h", default_s=86_400, min_s=60)
    ] = 86_400.0,
    start: Annotated[
        str, typer.Option(help="When the day begins, ISO 8601 with its UTC offset (without a scenario).")
    ] = DAY_START,
    max_price: Annotated[
        str,
        typer.Option(
            help="The most each driver pays per kWh, drawn from MIN-MAX pence (without a scenario)."
        ),
    ] = "25-50",
    seed: Annotated[
        int | None, typer.Option(help="Seed for both runs.", show_default="the scenario's, or 7")
    ] = None,
    json_out: Annotated[Path | None, json_option("the comparison")] = None,
    plot: Annotated[
        Path | None, plot_option("utilisation and revenue over the day, and the totals, for both")
    ] = None,
) -> None:
    """Run the same day twice in virtual time, flat then dynamic pricing, on the same seed: the same
    fleet and the same drivers, each with the most they pay per kWh. Reports revenue (pence),
    utilisation, drivers served and priced out for both. Exits 1 if either run breaks an invariant."""
    with human_output(Console(), json_out) as console:
        params = _params(console, scenario, chargers, drivers, round(duration), start, max_price, seed)
        from simulators.des import DesParams
        from simulators.pricing_compare import comparison, run_both, write_comparison_plot

        note = chatter(console)
        note.print(
            f"Simulating {params.chargers} chargers and {params.drivers} drivers for "
            f"{params.duration_s // 3600} h from {params.start.isoformat()}, flat then dynamic "
            f"(DES, seed {params.seed})"
        )
        runs = run_both(DesParams.from_live(params))
        result = comparison(runs)
        note.print(_table(result))
        if plot is not None:
            title = (
                f"Flat and dynamic pricing: {params.chargers} chargers, {params.drivers} drivers, "
                f"seed {params.seed}"
            )
            write_comparison_plot(plot, runs, title=title)
            note.print(f"plot written to {plot}")
        if json_out is not None:
            write_output(json_out, json.dumps(result, indent=2, sort_keys=True))
            note.print(f"comparison written to {json_out}")
        for mode, names in result["failed_invariants"].items():
            console.print(f"[red]{mode}: invariants failed:[/] {', '.join(names)}")
        if not result["ok"]:
            raise typer.Exit(1)
        console.print("[green]all invariants hold in both runs[/]")


def _params(
    console: Console,
    scenario: Path | None,
    chargers: int,
    drivers: int,
    duration_s: int,
    start: str,
    max_price: str,
    seed: int | None,
) -> LiveParams:
    from dataclasses import replace

    from simulators.fleet import DriverBehaviour
    from simulators.live import LiveParams
    from simulators.scenario import ScenarioError, load

    if scenario is not None:
        try:
            params = load(scenario).params
        except ScenarioError as exc:
            for line in str(exc).splitlines():
                console.print(f"[red]invalid:[/] {escape(line)}")
            raise typer.Exit(2) from exc
        return params if seed is None else replace(params, seed=seed)
    try:
        begins = datetime.fromisoformat(start.replace("Z", "+00:00"))
    except ValueError:
        begins = None
    if begins is None or begins.tzinfo is None:
        raise typer.BadParameter(
            f"{start!r}: give an ISO 8601 time with its UTC offset", param_hint="--start"
        )
    return LiveParams(
        chargers=chargers,
        drivers=drivers,
        duration_s=duration_s,
        seed=7 if seed is None else seed,
        start=begins,
        locks=False,
        behaviour=DriverBehaviour(arrival_window=0.95, max_price=price_range(max_price)),
    )


def _table(result: dict[str, object]) -> Table:
    flat, dynamic, change = (result[k] for k in ("flat", "dynamic", "change"))
    assert isinstance(flat, dict) and isinstance(dynamic, dict) and isinstance(change, dict)
    table = Table(title="Flat and dynamic pricing")
    for column in ("", "flat", "dynamic", "change"):
        table.add_column(column, justify="left" if not column else "right")
    shown: dict[str, tuple[str, Callable[[int], str]]] = {
        "revenue_pence": ("revenue captured", format_gbp),
        "host_payouts_pence": ("host payouts", format_gbp),
        "energy_wh": ("energy delivered", format_kwh),
        "utilisation_permille": ("utilisation", _permille),
        "drivers_served": ("drivers served", str),
        "drivers_priced_out": ("drivers priced out", str),
        "bookings": ("bookings", str),
        "quote_mean_per_kwh": ("mean price per kWh", _pence),
    }
    for key, (label, fmt) in shown.items():
        delta = change[key]
        table.add_row(label, fmt(flat[key]), fmt(dynamic[key]), ("-" if delta < 0 else "+") + fmt(abs(delta)))
    return table


def _permille(v: int) -> str:
    return f"{v / 10:.1f}%"


def _pence(v: int) -> str:
    return f"{v}p"
