"""The live view of a running simulation: a Rich panel redrawn in place on a terminal, and a plain
progress line every tenth of the run when output goes to a log (CI) instead."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from chargeshare.domain.money import format_gbp, format_kwh
from simulators.timeline import Sample, Timeline

LOG_STEPS = 10  # plain lines per run when not on a terminal


class LiveView:
    def __init__(self, console: Console, *, minutes: int, drivers: int, timeline: Timeline) -> None:
        self.console = console
        self.minutes = max(1, minutes)
        self.drivers = drivers
        self.timeline = timeline
        self.elapsed_s = 0.0
        self.sample: Sample | None = None
        self._wall0 = time.monotonic()
        self._live: Live | None = None
        self._next_log = 0

    def __enter__(self) -> LiveView:
        if self.console.is_terminal:
            self._live = Live(self.render(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.update(self.render(), refresh=True)
            self._live.__exit__(kind, exc, tb)

    def update(self, elapsed_s: float, info: dict[str, Any]) -> None:
        """The live runner's progress callback."""
        self.elapsed_s = elapsed_s
        sample = info.get("sample")
        if isinstance(sample, Sample):
            self.sample = sample
            self.timeline.add(sample)
        if self._live is not None:
            self._live.update(self.render())
        elif not info.get("final"):
            step = int(LOG_STEPS * elapsed_s / (self.minutes * 60))
            if step >= self._next_log:
                self._next_log = step + 1
                self.console.print(self.line(), highlight=False, soft_wrap=True)

    def line(self) -> str:
        minute = int(self.elapsed_s // 60)
        head = f"sim {minute:>4}/{self.minutes} min"
        s = self.sample
        if s is None:
            return head
        return (
            f"{head}  chargers {s.online} online, {s.offline} offline, {s.charging} charging  "
            f"sessions {s.sessions} ({s.open_sessions} open)  {format_kwh(s.energy_wh)}  "
            f"{format_gbp(s.captured_pence)} captured  faults {s.faults_fired}  "
            f"drivers done {s.drivers_done}/{self.drivers}  conflicts {s.conflicts}"
        )

    def render(self) -> RenderableType:
        minute = min(self.minutes, int(self.elapsed_s // 60))
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            Text("sim", style="bold"),
            ProgressBar(total=self.minutes, completed=min(self.minutes, self.elapsed_s / 60), width=40),
            Text(f"{minute:>4} / {self.minutes} min"),
            Text(f"{time.monotonic() - self._wall0:5.1f} s", style="dim"),
        )
        s = self.sample
        grid = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
        for name in ("chargers", "", "sessions", "", "drivers", ""):
            grid.add_column(name)
        if s is None:
            return Panel(Group(bar, Text("starting the fleet...", style="dim")), title="chargeshare simulate")
        grid.add_row(
            "online",
            f"[green]{s.online}[/]/{s.chargers}",
            "charging now",
            str(s.open_sessions),
            "done",
            f"{s.drivers_done}/{self.drivers}",
        )
        grid.add_row(
            "offline",
            f"[red]{s.offline}[/]" if s.offline else "0",
            "total",
            str(s.sessions),
            "conflicts (409)",
            str(s.conflicts),
        )
        grid.add_row(
            "charging",
            f"[cyan]{s.charging}[/] ({100 * s.utilisation:.0f}% of connectors)",
            "energy",
            format_kwh(s.energy_wh),
            "faults fired",
            f"[yellow]{s.faults_fired}[/]" if s.faults_fired else "0",
        )
        grid.add_row("", "", "captured", format_gbp(s.captured_pence), "", "")
        return Panel(Group(bar, Text(""), grid), title="chargeshare simulate", expand=False)
