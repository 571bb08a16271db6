"""`chargeshare simulate --engine des`: the same fleet, drivers and scenario in SimPy virtual time."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from simulators.live import LiveParams
    from simulators.report import RunReport
    from simulators.timeline import Timeline

LIVE_MAX_CHARGERS = 2_000  # one websocket and one asyncio task each, on one loop


class Engine(StrEnum):
    LIVE = "live"
    DES = "des"


def run_des_command(
    console: Console, params: LiveParams, *, trace: Path | None, timeline: Timeline | None
) -> RunReport:
    """Run `params` under the discrete-event engine; exit 2 for what it cannot do. With a
    `timeline`, the run is sampled into it as a live run is (for --plot and --html)."""
    from simulators.des import DesParams, run_des
    from simulators.des.central import NotSupportedInDes
    from simulators.des.engine import check_supported

    if trace is not None:
        console.print("[red]error:[/] --trace records a live run; use it with --engine live")
        raise typer.Exit(2)
    des = DesParams.from_live(params)
    progress = None
    if timeline is not None:
        timeline.power_window_s = max(timeline.power_window_s, des.meter_interval_s)
        progress = _sampler(timeline)
    try:
        check_supported(des)
    except NotSupportedInDes as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    from chargeshare.cli.options import chatter

    note = chatter(console)
    note.print(
        f"Simulating {des.chargers} chargers and {des.drivers} drivers around {des.city.title()} for "
        f"{des.duration_s // 60} simulated minutes in virtual time (DES, seed {des.seed})"
    )
    result = run_des(des, progress)
    note.print(
        f"{result.events:,} events and {result.frames:,} OCPP frames in "
        f"{result.setup_s + result.run_s:.1f} s wall"
    )
    return result.report


def _sampler(timeline: Timeline) -> Callable[[float, dict[str, Any]], None]:
    def collect(_elapsed_s: float, info: dict[str, Any]) -> None:
        timeline.add(info["sample"])

    return collect
