"""Pictures of a run: utilisation, power drawn and cumulative revenue over simulated time, as a PNG or
an SVG (matplotlib, headless), or as inline SVG for an HTML page (no dependencies).

Every picture draws a line only between samples with no gap between them (`Timeline.segments`), and
marks the run's end and each fault's window, so what is drawn is what was sampled.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulators.timeline import Timeline

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    unit: str
    values: list[float]
    colour: str
    ceiling: float | None = None  # the most it can be (power: the fleet's maximum), drawn when known


def series_of(timeline: Timeline) -> list[Series]:
    capacity_w = max((s.capacity_w for s in timeline.samples), default=0)
    # Pence become pounds only here, for the axis: the money itself stays integer pence.
    return [
        Series(
            "utilisation", "Utilisation (connectors charging)", "%", timeline.utilisation_pct(), "#1f77b4"
        ),
        Series("power", "Power drawn", "kW", timeline.power_kw(), "#ff7f0e", capacity_w / 1000 or None),
        Series(
            "revenue",
            "Revenue captured (cumulative)",
            "GBP",
            [p / 100 for p in timeline.revenue_pence()],
            "#2ca02c",
        ),
    ]


@dataclass(frozen=True)
class FaultWindow:
    """A fault of the run's timeline, as scheduled: from `start_s` for `duration_s` (0: at once)."""

    number: int  # F1, F2, ... in the order they fire: the plots' labels and the report's rows
    action: str
    start_s: float
    duration_s: float
    count: int

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    @property
    def label(self) -> str:
        return f"F{self.number} {self.action}"


def fault_windows(faults: Iterable[Mapping[str, Any]]) -> list[FaultWindow]:
    """The windows of a report's `params["faults"]` (`at_s`, `action`, `count`, `duration_s`)."""
    ordered = sorted(faults, key=lambda f: float(f.get("at_s", 0)))
    return [
        FaultWindow(
            i,
            str(f.get("action", "?")),
            float(f.get("at_s", 0)),
            float(f.get("duration_s", 0) or 0),
            int(f.get("count", 1) or 1),
        )
        for i, f in enumerate(ordered, 1)
    ]


@dataclass(frozen=True)
class Marks:
    """What the plots mark beside the samples: where the run's window ends, and its faults."""

    run_end_s: float | None = None
    faults: Sequence[FaultWindow] = field(default_factory=tuple)


def marks_of(params: Mapping[str, Any]) -> Marks:
    """The marks a run report's `params` give: its window (`duration_s`) and its `faults`."""
    duration = params.get("duration_s")
    return Marks(
        None if duration is None else float(duration), tuple(fault_windows(params.get("faults") or ()))
    )


PLOT_FORMATS = ("png", "svg")
FAULT_COLOUR = "#d62728"
GAP_COLOUR = "#bbbbbb"


def write_plot(path: Path, timeline: Timeline, *, title: str, marks: Marks | None = None) -> None:
    """A PNG or an SVG, chosen by the extension (the CLI refuses any other before the run)."""
    kind = path.suffix.lower().lstrip(".")
    if kind not in PLOT_FORMATS:
        raise ValueError(f"{path}: a plot is a .png or an .svg file")
    figure = build_figure(timeline, title=title, marks=marks)
    figure.savefig(path, format=kind, dpi=100)


def build_figure(timeline: Timeline, *, title: str, marks: Marks | None = None) -> Figure:
    from matplotlib.figure import Figure  # the object API needs no pyplot state and no display

    marks = marks or Marks()
    figure = Figure(figsize=(10, 8), layout="constrained")
    axes = figure.subplots(3, 1, sharex=True)
    minutes = timeline.minutes()
    parts = timeline.segments()
    for ax, s in zip(axes, series_of(timeline), strict=True):
        for n, part in enumerate(parts):
            xs, ys = [minutes[i] for i in part], [s.values[i] for i in part]
            # One line per run of samples: matplotlib would otherwise join them across a gap.
            ax.plot(
                xs, ys, color=s.colour, label=s.label if n == 0 else None, marker="." if len(xs) == 1 else ""
            )
        if s.ceiling is not None:
            ax.axhline(s.ceiling, color=s.colour, linestyle=":", linewidth=1, label="fleet maximum")
        ax.set_ylabel(s.unit)
        ax.set_title(s.label, fontsize=10, loc="left")
        ax.grid(alpha=0.3)
        _mark(ax, timeline, marks, labelled=ax is axes[0])
    axes[0].set_ylim(0, 100)
    for ax in axes[1:]:
        ax.set_ylim(bottom=0)
    axes[-1].set_xlabel("simulated minutes")
    for ax in axes:
        handles, _ = ax.get_legend_handles_labels()
        if len(handles) > 1:
            # Beside the axes, so that it hides no fault's label or line.
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    figure.suptitle(title)
    return figure


def _mark(ax: Axes, timeline: Timeline, marks: Marks, *, labelled: bool) -> None:
    for n, (a, b) in enumerate(timeline.gaps_s()):
        named = "no samples" if labelled and n == 0 else None
        ax.axvspan(a / 60, b / 60, color=GAP_COLOUR, alpha=0.3, hatch="//", label=named)
    for n, f in enumerate(marks.faults):
        named = "faults (F1, F2, ...)" if labelled and n == 0 else None
        if f.duration_s > 0:
            ax.axvspan(f.start_s / 60, f.end_s / 60, color=FAULT_COLOUR, alpha=0.12, label=named)
        else:
            ax.axvline(f.start_s / 60, color=FAULT_COLOUR, alpha=0.6, linewidth=1, label=named)
        if labelled:
            ax.annotate(
                f"F{f.number}",
                (f.start_s / 60, 1),
                xycoords=("data", "axes fraction"),
                xytext=(2, -10),
                textcoords="offset points",
                fontsize=8,
                color=FAULT_COLOUR,
            )
    if marks.run_end_s is not None:
        ax.axvline(
            marks.run_end_s / 60,
            color="black",
            linestyle="--",
            linewidth=1,
            label="end of run" if labelled else None,
        )


WIDTH, HEIGHT = 760, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 24, 28  # margins: y labels left, x labels below, title above


def svg_charts(timeline: Timeline, marks: Marks | None = None) -> list[str]:
    """One inline `<svg>` per series, on one time axis, with the gaps, faults and run's end marked."""
    marks = marks or Marks()
    ends = [s.t_s for s in timeline.samples] + [f.end_s for f in marks.faults]
    if marks.run_end_s is not None:
        ends.append(marks.run_end_s)
    x1 = max(ends, default=60.0) or 60.0
    return [_svg(timeline, s, marks, x1) for s in series_of(timeline)]


def _number(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.1f}"


def _svg(timeline: Timeline, s: Series, marks: Marks, x1: float) -> str:
    e = html.escape
    known = [v for v in s.values if not math.isnan(v)]
    top = max([*known, 100.0 if s.key == "utilisation" else 0.0, s.ceiling or 0.0]) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t_s: float) -> float:
        return LEFT + t_s / x1 * plot_w

    def y(v: float) -> float:
        return TOP + plot_h - v / top * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" data-series="{e(s.key)}" role="img" '
        f'aria-label="{e(s.label)} over simulated time">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>',
        f'<text x="{LEFT}" y="15" font-size="13" font-weight="bold">{e(s.label)} ({e(s.unit)})</text>',
    ]
    for a, b in timeline.gaps_s():
        out.append(
            f'<rect class="gap" x="{x(a):.1f}" y="{TOP}" width="{x(b) - x(a):.1f}" height="{plot_h}" '
            f'fill="{GAP_COLOUR}" fill-opacity="0.35"><title>no samples from minute {a / 60:.0f} '
            f"to {b / 60:.0f}</title></rect>"
        )
    for f in marks.faults:
        tip = e(
            f"{f.label} x{f.count}: minute {f.start_s / 60:g}"
            + (f" to {f.end_s / 60:g}" if f.duration_s else "")
        )
        if f.duration_s > 0:
            out.append(
                f'<rect class="fault" x="{x(f.start_s):.1f}" y="{TOP}" '
                f'width="{max(1.0, x(f.end_s) - x(f.start_s)):.1f}" height="{plot_h}" '
                f'fill="{FAULT_COLOUR}" fill-opacity="0.12"><title>{tip}</title></rect>'
            )
        else:
            out.append(
                f'<line class="fault" x1="{x(f.start_s):.1f}" y1="{TOP}" x2="{x(f.start_s):.1f}" '
                f'y2="{TOP + plot_h}" stroke="{FAULT_COLOUR}" stroke-opacity="0.6">'
                f"<title>{tip}</title></line>"
            )
        out.append(
            f'<text x="{x(f.start_s) + 2:.1f}" y="{TOP + 11}" font-size="10" fill="{FAULT_COLOUR}">'
            f"F{f.number}</text>"
        )
    for v in (0.0, top / 2, top):  # y axis: three gridlines, labelled
        out.append(
            f'<line x1="{LEFT}" y1="{y(v):.1f}" x2="{WIDTH - RIGHT}" y2="{y(v):.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 4}" y="{y(v) + 4:.1f}" font-size="10" text-anchor="end">{_number(v)}</text>'
        )
    step = _tick_minutes(x1 / 60)
    tick = 0.0
    while tick <= x1 / 60 + 1e-9:  # x axis: simulated minutes
        out.append(
            f'<text x="{x(tick * 60):.1f}" y="{HEIGHT - 10}" font-size="10" text-anchor="middle">'
            f"{tick:g}</text>"
        )
        tick += step
    out.append(
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 1}" font-size="10" text-anchor="end">'
        "simulated minutes</text>"
    )
    for part in timeline.segments():
        points = [(x(timeline.samples[i].t_s), y(s.values[i])) for i in part if not math.isnan(s.values[i])]
        if len(points) == 1:
            out.append(f'<circle cx="{points[0][0]:.1f}" cy="{points[0][1]:.1f}" r="2.5" fill="{s.colour}"/>')
        elif points:
            joined = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            out.append(f'<polyline fill="none" stroke="{s.colour}" stroke-width="2" points="{joined}"/>')
    if s.ceiling is not None:
        out.append(
            f'<line class="ceiling" x1="{LEFT}" y1="{y(s.ceiling):.1f}" x2="{WIDTH - RIGHT}" '
            f'y2="{y(s.ceiling):.1f}" stroke="{s.colour}" stroke-dasharray="2 3"/>'
            f'<text x="{WIDTH - RIGHT}" y="{y(s.ceiling) - 3:.1f}" font-size="10" text-anchor="end">'
            f"fleet maximum {_number(s.ceiling)} {e(s.unit)}</text>"
        )
    if marks.run_end_s is not None:
        end = x(marks.run_end_s)
        out.append(
            f'<line class="run-end" x1="{end:.1f}" y1="{TOP}" x2="{end:.1f}" y2="{TOP + plot_h}" '
            'stroke="#000" stroke-dasharray="4 3"><title>end of the run\'s window</title></line>'
            f'<text x="{end - 3:.1f}" y="{TOP + 11}" font-size="10" text-anchor="end">end</text>'
        )
    out.append(
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" '
        'stroke="#666"/></svg>'
    )
    return "".join(out)


def _tick_minutes(span_min: float) -> float:
    """A round step giving at most about ten ticks over `span_min` minutes."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 240, 360, 720, 1440):
        if span_min / step <= 10:
            return float(step)
    return 1440.0 * math.ceil(span_min / 1440 / 10)
