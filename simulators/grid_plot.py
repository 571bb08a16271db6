"""Each feeder's load against its limit over a run (matplotlib, headless): one panel per feeder,
the load sampled from the virtual chargers and the limit in force as a step line, so a flexibility
event shows as the limit dropping and the load following it down."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulators.plots import PLOT_FORMATS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LOAD_COLOUR = "#1f77b4"
LIMIT_COLOUR = "#d62728"


def write_feeder_plot(path: Path, feeders: Mapping[str, Mapping[str, list[Any]]], *, title: str) -> None:
    """A PNG or an SVG, chosen by the extension, of a report's `grid_feeders`."""
    kind = path.suffix.lower().lstrip(".")
    if kind not in PLOT_FORMATS:
        raise ValueError(f"{path}: a plot is a .png or an .svg file")
    feeder_figure(feeders, title=title).savefig(path, format=kind, dpi=100)


def feeder_figure(feeders: Mapping[str, Mapping[str, list[Any]]], *, title: str) -> Figure:
    from matplotlib.figure import Figure  # the object API needs no pyplot state and no display

    if not feeders:
        raise ValueError("the run had no feeders to plot")
    figure = Figure(figsize=(10, 2.6 * len(feeders) + 0.8), layout="constrained")
    axes = figure.subplots(len(feeders), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (name, series) in zip(axes, sorted(feeders.items()), strict=True):
        minutes = series["minute"]
        ax.plot(minutes, [w / 1000 for w in series["load_w"]], color=LOAD_COLOUR, label="load")
        ax.step(
            minutes, [w / 1000 for w in series["limit_w"]], where="post", color=LIMIT_COLOUR, label="limit"
        )
        ax.set_title(f"Feeder {name}", fontsize=10, loc="left")
        ax.set_ylabel("kW")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    axes[-1].set_xlabel("simulated minutes")
    figure.suptitle(title)
    return figure
