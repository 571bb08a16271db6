"""Flat against dynamic pricing: the same UK day, fleet, drivers and seed under the discrete-event
engine twice, once with every host charging its listed price and once with every host pricing
dynamically, and what each earned, how busy the fleet was and whom it served.

The drivers are the same in both runs (each with the most they pay per kWh), so a difference in who
was served is the prices' doing. Both runs are deterministic: the comparison is the same bytes for
the same parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chargeshare.domain.dynamic_pricing import PricingMode
from simulators.des import DesParams, run_des
from simulators.driver import CHARGED, PRICED_OUT
from simulators.report import RunReport
from simulators.timeline import Timeline

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MODES = (PricingMode.FLAT.value, PricingMode.DYNAMIC.value)
COLOURS = {"flat": "#1f77b4", "dynamic": "#ff7f0e"}
# What the comparison shows for each run, from its summary.
FIGURES = (
    "revenue_pence",
    "host_payouts_pence",
    "energy_wh",
    "utilisation_permille",
    "drivers_served",
    "drivers_priced_out",
    "bookings",
    "quote_mean_per_kwh",
    "quote_min_per_kwh",
    "quote_max_per_kwh",
)


@dataclass(frozen=True)
class PricingRun:
    mode: str
    report: RunReport
    timeline: Timeline

    def figures(self) -> dict[str, int]:
        s = self.report.summary
        pricing = s["pricing"]
        return {
            "revenue_pence": s["captured_pence"],
            "host_payouts_pence": s["host_payouts_pence"],
            "energy_wh": s["energy_wh"],
            "utilisation_permille": pricing["utilisation_permille"],
            "drivers_served": s["driver_outcomes"].get(CHARGED, 0),
            "drivers_priced_out": s["no_charger_because"].get(PRICED_OUT, 0),
            "bookings": s["bookings"],
            "quote_mean_per_kwh": pricing["quote_mean_per_kwh"],
            "quote_min_per_kwh": pricing["quote_min_per_kwh"],
            "quote_max_per_kwh": pricing["quote_max_per_kwh"],
        }


def run_both(params: DesParams) -> tuple[PricingRun, PricingRun]:
    """The same parameters under flat, then dynamic pricing, each sampled over time for the plots."""
    runs = []
    for mode in MODES:
        timeline = Timeline()
        timeline.power_window_s = max(timeline.power_window_s, params.meter_interval_s)
        des = dataclasses.replace(params, fleet=dataclasses.replace(params.fleet, pricing=mode))
        result = run_des(des, _sampler(timeline))
        runs.append(PricingRun(mode, result.report, timeline))
    flat, dynamic = runs
    return flat, dynamic


def _sampler(timeline: Timeline) -> Callable[[float, dict[str, Any]], None]:
    def collect(_elapsed_s: float, info: dict[str, Any]) -> None:
        timeline.add(info["sample"])

    return collect


def comparison(runs: tuple[PricingRun, PricingRun]) -> dict[str, Any]:
    """The JSON comparison: each run's figures, the change from flat to dynamic, and whether both
    runs kept every invariant."""
    flat, dynamic = (r.figures() for r in runs)
    params = {k: v for k, v in runs[0].report.params.items() if k != "pricing"}
    return {
        "params": params,
        "flat": flat,
        "dynamic": dynamic,
        "change": {k: dynamic[k] - flat[k] for k in FIGURES},
        "ok": all(r.report.ok for r in runs),
        "failed_invariants": {
            r.mode: [i.name for i in r.report.invariants if not i.ok] for r in runs if not r.report.ok
        },
    }


def write_comparison_plot(path: Path, runs: tuple[PricingRun, PricingRun], *, title: str) -> None:
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("png", "svg"):
        raise ValueError(f"{path}: a plot is a .png or an .svg file")
    comparison_figure(runs, title=title).savefig(path, format=kind, dpi=100)


def comparison_figure(runs: tuple[PricingRun, PricingRun], *, title: str) -> Figure:
    """Utilisation and cumulative revenue over the day for both, then the day's totals side by side."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 10), layout="constrained")
    util, revenue, served, money = figure.subplots(4, 1)
    for run in runs:
        t, colour = run.timeline, COLOURS[run.mode]
        hours = [m / 60 for m in t.minutes()]
        for n, part in enumerate(t.segments()):
            label = run.mode if n == 0 else None
            util.plot(
                [hours[i] for i in part], [t.utilisation_pct()[i] for i in part], color=colour, label=label
            )
            pounds = [t.revenue_pence()[i] / 100 for i in part]
            revenue.plot([hours[i] for i in part], pounds, color=colour, label=label)
    util.set_title("Utilisation (connectors charging)", fontsize=10, loc="left")
    util.set_ylabel("%")
    util.set_ylim(0, 100)
    revenue.set_title("Revenue captured (cumulative)", fontsize=10, loc="left")
    revenue.set_ylabel("GBP")
    revenue.set_xlabel("simulated hours")
    figures = [r.figures() for r in runs]
    _bars(served, ["drivers_served", "drivers_priced_out", "bookings"], figures, "drivers", lambda v: v)
    served.set_title("Drivers served and priced out", fontsize=10, loc="left")
    _bars(money, ["revenue_pence", "host_payouts_pence"], figures, "GBP", lambda v: v / 100)
    money.set_title("The day's revenue and host payouts", fontsize=10, loc="left")
    for ax in (util, revenue, served, money):
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    figure.suptitle(title)
    return figure


def _bars(ax: Any, keys: list[str], figures: list[dict[str, int]], unit: str, scale: Any) -> None:
    width = 0.38
    for n, (mode, values) in enumerate(zip(MODES, figures, strict=True)):
        xs = [i + (n - 0.5) * width for i in range(len(keys))]
        ax.bar(xs, [scale(values[k]) for k in keys], width, color=COLOURS[mode], label=mode)
    ax.set_xticks(range(len(keys)), [k.replace("_", " ").removesuffix(" pence") for k in keys])
    ax.set_ylabel(unit)
