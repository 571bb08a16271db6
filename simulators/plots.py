"""Pictures of a run: utilisation, power drawn and cumulative revenue over simulated time, as a PNG or
an SVG (matplotlib, headless), or a self-contained HTML page with inline SVG (no dependencies)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from simulators.timeline import Timeline

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    unit: str
    values: list[float]
    colour: str


def series_of(timeline: Timeline) -> list[Series]:
    # Pence become pounds only here, for the axis: the money itself stays integer pence.
    return [
        Series(
            "utilisation", "Utilisation (connectors charging)", "%", timeline.utilisation_pct(), "#1f77b4"
        ),
        Series("power", "Power drawn", "kW", timeline.power_kw(), "#ff7f0e"),
        Series(
            "revenue",
            "Revenue captured (cumulative)",
            "GBP",
            [p / 100 for p in timeline.revenue_pence()],
            "#2ca02c",
        ),
    ]


PLOT_FORMATS = ("png", "svg")


def write_plot(path: Path, timeline: Timeline, *, title: str) -> None:
    """A PNG or an SVG, chosen by the extension (the CLI refuses any other before the run)."""
    kind = path.suffix.lower().lstrip(".")
    if kind not in PLOT_FORMATS:
        raise ValueError(f"{path}: a plot is a .png or an .svg file")
    figure = build_figure(timeline, title=title)
    figure.savefig(path, format=kind, dpi=100)


def build_figure(timeline: Timeline, *, title: str) -> Figure:
    from matplotlib.figure import Figure  # the object API needs no pyplot state and no display

    figure = Figure(figsize=(9, 8), layout="constrained")
    axes = figure.subplots(3, 1, sharex=True)
    minutes = timeline.minutes()
    for ax, s in zip(axes, series_of(timeline), strict=True):
        ax.plot(minutes, s.values, color=s.colour, label=s.label)
        ax.set_ylabel(s.unit)
        ax.set_title(s.label, fontsize=10, loc="left")
        ax.grid(alpha=0.3)
    axes[0].set_ylim(0, 100)
    axes[-1].set_xlabel("simulated minutes")
    figure.suptitle(title)
    return figure


WIDTH, HEIGHT, PAD = 720, 180, 40


def _svg(minutes: list[float], s: Series) -> str:
    top = max([*s.values, 100.0 if s.key == "utilisation" else 0.0]) or 1.0
    span = (max(minutes) - min(minutes)) if len(minutes) > 1 else 1.0
    x0 = min(minutes) if minutes else 0.0

    def x(m: float) -> float:
        return PAD + (m - x0) / (span or 1.0) * (WIDTH - 2 * PAD)

    def y(v: float) -> float:
        return HEIGHT - PAD / 2 - v / top * (HEIGHT - PAD)

    points = " ".join(f"{x(m):.1f},{y(v):.1f}" for m, v in zip(minutes, s.values, strict=True))
    last = s.values[-1] if s.values else 0.0
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'data-series="{s.key}" role="img" aria-label="{html.escape(s.label)}">'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff" stroke="#ddd"/>'
        f'<line x1="{PAD}" y1="{y(0):.1f}" x2="{WIDTH - PAD}" y2="{y(0):.1f}" stroke="#999"/>'
        f'<text x="{PAD}" y="14" font-size="12">{html.escape(s.label)} ({s.unit}); '
        f"max {top:.1f}, last {last:.1f}</text>"
        f'<polyline fill="none" stroke="{s.colour}" stroke-width="2" points="{points}"/>'
        f'<text x="{PAD}" y="{HEIGHT - 4}" font-size="10">{x0:.0f} min</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 4}" font-size="10" text-anchor="end">'
        f"{x0 + span:.0f} min</text></svg>"
    )


def html_report(timeline: Timeline, *, title: str) -> str:
    minutes = timeline.minutes()
    charts = "\n".join(f"<figure>{_svg(minutes, s)}</figure>" for s in series_of(timeline))
    data = json.dumps(timeline.to_dict()).replace("</", "<\\/")
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        "<style>body{font-family:sans-serif;margin:2em}figure{margin:0 0 1em}</style></head>\n"
        f"<body><h1>{html.escape(title)}</h1>\n{charts}\n"
        f'<script type="application/json" id="series">{data}</script>\n</body></html>\n'
    )
