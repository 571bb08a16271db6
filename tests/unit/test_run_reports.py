"""Plots and run reports people read: gaps in the samples stay gaps, the run's end and its faults are
marked, and the HTML pages hold their summary, checks, plots, fault timeline and chargers, escaped
and self-contained."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from html.parser import HTMLParser
from typing import Any

import pytest

from chargeshare.services.invariants import InvariantResult
from simulators.html_report import MAX_CHARGER_ROWS, IndexEntry, RunPage, index_html, run_html
from simulators.plots import Marks, build_figure, fault_windows, marks_of, svg_charts
from simulators.report import ChargerRow, RunReport
from simulators.timeline import Sample, Timeline


def sample(t_s: float, energy_wh: int, pence: int = 0, charging: int = 1) -> Sample:
    return Sample(t_s, 2, 2, 0, charging, 2, charging, 1, charging, energy_wh, pence, capacity_w=22_000)


# Samples every minute, then nothing for 20 minutes (the sampler got no turn), then every minute again.
GAPPED = Timeline(
    [sample(60 * m, 100 * m) for m in range(6)] + [sample(60 * m, 100 * m, 250) for m in range(25, 29)],
    power_window_s=60,
)
FAULTS = fault_windows(
    [
        {"at_s": 1800, "action": "payment_outage", "count": 1, "duration_s": 600},
        {"at_s": 120, "action": "reboot", "count": 2, "duration_s": 0},
    ]
)
MARKS = Marks(run_end_s=1500, faults=FAULTS)


def test_a_gap_splits_the_samples_and_power_is_not_known_across_it() -> None:
    assert GAPPED.segments() == [range(0, 6), range(6, 10)]
    assert GAPPED.gaps_s() == [(300.0, 1500.0)]
    power = GAPPED.power_kw()
    # 100 Wh a minute is 6 kW on both sides; the first sample after the gap has no power of its own.
    assert power[1:6] == [pytest.approx(6.0)] * 5 and power[7:] == [pytest.approx(6.0)] * 3
    assert power[0] == 0.0 and math.isnan(power[6])
    assert GAPPED.to_dict()["power_kw"][6] is None  # JSON has no NaN
    regular = Timeline([sample(60 * m, 100 * m) for m in range(10)])
    assert regular.segments() == [range(10)] and regular.gaps_s() == []


def test_the_power_window_never_reaches_back_across_a_gap() -> None:
    # With a window wider than the gap, the sample after it would average over the gap otherwise.
    wide = Timeline(GAPPED.samples, power_window_s=3_600)
    assert math.isnan(wide.power_kw()[6])
    assert wide.power_kw()[7] == pytest.approx(6.0)


def test_faults_are_numbered_in_the_order_they_fire() -> None:
    assert [(f.number, f.action, f.start_s, f.end_s) for f in FAULTS] == [
        (1, "reboot", 120.0, 120.0),
        (2, "payment_outage", 1800.0, 2400.0),
    ]
    marks = marks_of({"duration_s": 3600, "faults": [{"at_s": 60, "action": "silence", "duration_s": 300}]})
    assert marks.run_end_s == 3600.0 and [f.label for f in marks.faults] == ["F1 silence"]
    assert marks_of({}) == Marks()


@pytest.mark.slow
def test_the_figure_draws_each_run_of_samples_apart_and_marks_end_and_faults() -> None:
    figure = build_figure(GAPPED, title="t", marks=MARKS)
    utilisation, power, _ = figure.axes
    drawn = [line for line in utilisation.get_lines() if line.get_color() == "#1f77b4"]
    xs: list[Any] = [line.get_xdata() for line in drawn]
    assert [len(x) for x in xs] == [6, 4]  # two lines, none across the gap
    assert max(float(x) for x in xs[0]) == 5.0 and min(float(x) for x in xs[1]) == 25.0
    labels = {line.get_label() for line in power.get_lines()}
    assert {"fleet maximum"} <= labels
    # The end of the run and the instant fault are vertical lines; the outage and the gap, bands.
    assert "end of run" in {line.get_label() for line in utilisation.get_lines()}
    assert len(utilisation.patches) == 2


class Page(HTMLParser):
    """What the tests read from a page: elements by tag with attributes, and text by element id."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text_in: dict[str, str] = {}
        self._open: list[str | None] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag not in ("br", "meta", "circle", "rect", "line", "polyline"):
            self._open.append(a.get("id"))

    def handle_endtag(self, tag: str) -> None:
        if tag not in ("br", "meta", "circle", "rect", "line", "polyline") and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for element in self._open:
            if element is not None:
                self.text_in[element] = self.text_in.get(element, "") + data + " "

    def all(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def test_svg_charts_draw_segments_gaps_faults_and_the_end() -> None:
    charts = svg_charts(GAPPED, MARKS)
    assert len(charts) == 3
    for chart in charts:
        page = Page(chart)
        assert len(page.all("polyline")) == 2  # one per run of samples
        assert len(page.all("rect", **{"class": "gap"})) == 1
        assert len(page.all("rect", **{"class": "fault"})) == 1  # the outage
        assert len(page.all("line", **{"class": "fault"})) == 1  # the reboot, at once
        assert len(page.all("line", **{"class": "run-end"})) == 1
    power = Page(charts[1])
    assert len(power.all("line", **{"class": "ceiling"})) == 1
    # No point of a line lies inside the gap.
    (gap,) = power.all("rect", **{"class": "gap"})
    left, right = float(gap["x"] or 0), float(gap["x"] or 0) + float(gap["width"] or 0)
    xs = [float(p.split(",")[0]) for line in power.all("polyline") for p in str(line["points"]).split()]
    assert not [x for x in xs if left < x < right]


def invariant(name: str, ok: bool, *failures: str) -> InvariantResult:
    return InvariantResult(name, f"the {name} check", ok, 3, tuple(failures))


SUMMARY = {
    "bookings": 4,
    "bookings_by_status": {"completed": 3, "cancelled": 1},
    "sessions": 3,
    "energy_wh": 12_345,
    "captured_pence": 678,
    "driver_outcomes": {"charged": 3},
    "fault_outcomes": {"payment_retries": 2},
}


def report(*, ok: bool = True, chargers: int = 2, error: str | None = None) -> RunReport:
    rows = tuple(
        ChargerRow(f"CP{i:03d}", "1.6", 1, 7_400, "online", 2, 1, 4_000, 120, 0) for i in range(chargers)
    )
    checks = [invariant("ledger", True), invariant("overlap", ok, "bookings 1 and 2 <overlap>")]
    params = {"engine": "live", "chargers": chargers, "duration_s": 1500, "faults": []}
    return RunReport(params, dict(SUMMARY), checks, [] if error is None else [error], 9.5, chargers=rows)


def test_a_run_page_has_its_summary_checks_plots_faults_and_chargers() -> None:
    page = RunPage("a run", report(ok=False), GAPPED, MARKS, expectations=[(True, "sessions >= 1")])
    text = run_html(page)
    parsed = Page(text)
    assert '<th scope="row">energy delivered</th><td>12.34 kWh</td>' in text
    assert "completed 3, cancelled 1" in parsed.text_in["summary"]
    checks = parsed.all("tr", **{"class": "check"})
    assert [(c["data-name"], c["data-ok"]) for c in checks] == [("ledger", "true"), ("overlap", "false")]
    assert "bookings 1 and 2 <overlap>" in parsed.text_in["invariants"]  # escaped, read back as text
    assert "&lt;overlap&gt;" in text and "<overlap>" not in text
    assert len(parsed.all("svg")) == 3
    assert [a["data-series"] for a in parsed.all("svg")] == ["utilisation", "power", "revenue"]
    assert len(parsed.all("tr", **{"class": "fault"})) == 2
    assert "payment_outage" in parsed.text_in["faults"] and "at once" in parsed.text_in["faults"]
    assert len(parsed.all("tr", **{"class": "charger"})) == 2
    assert "checks failed" in text
    series = json.loads(parsed.text_in["series"])
    assert series["power_kw"][6] is None and len(series["minutes"]) == 10


def test_a_page_is_self_contained_and_escapes_every_text() -> None:
    hostile = '<script>alert("x")</script>'
    page = RunPage(
        hostile,
        report(error=hostile),
        GAPPED,
        Marks(1500, fault_windows([{"at_s": 60, "action": hostile, "duration_s": 60}])),
        expectations=[(False, hostile)],
        notes=[hostile],
        lead=hostile,
    )
    text = run_html(page)
    assert "<script>" not in text and "alert(&quot;x&quot;)" in text
    # Nothing to fetch: no external addresses, stylesheets, images or scripts by reference.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|[a-z])""", text)
    assert "<link" not in text and "@import" not in text
    assert [t for t, a in Page(text).tags if t == "script"] == ["script"]  # the JSON data only


def test_a_replay_page_leaves_out_what_only_the_drivers_saw() -> None:
    replayed = replace(report(), params={"engine": "replay"})
    shown = Page(run_html(RunPage("replay", replayed, GAPPED))).text_in["summary"]
    assert "energy delivered" in shown and "driver outcomes" not in shown and "faults fired" not in shown
    assert "driver outcomes" in Page(run_html(RunPage("run", report(), GAPPED))).text_in["summary"]


def test_a_large_fleet_lists_the_first_chargers_and_says_how_many_more() -> None:
    text = run_html(RunPage("big", report(chargers=MAX_CHARGER_ROWS + 7), Timeline()))
    assert len(Page(text).all("tr", **{"class": "charger"})) == MAX_CHARGER_ROWS
    assert "and 7 more chargers" in text and "No samples were taken" in text


def test_the_index_links_each_scenario_to_its_section_with_its_verdict() -> None:
    good = RunPage("Scenario good", report(), GAPPED, MARKS, expectations=[(True, "sessions >= 1")])
    bad = RunPage("Scenario bad", report(ok=False), GAPPED, Marks(), expectations=[(False, "a <b> c")])
    entries = [
        IndexEntry("good one", "scenarios/good.yaml", good),
        IndexEntry("bad", "scenarios/bad.yaml", bad),
        IndexEntry("bad", "elsewhere/bad.yaml", bad),
    ]
    text = index_html("suite", entries)
    parsed = Page(text)
    rows = parsed.all("tr")
    links = [a["href"] for a in parsed.all("a") if a["href"] != "#scenarios"]
    sections = [a["id"] for a in parsed.all("section")]
    assert links == ["#scenario-good-one", "#scenario-bad", "#scenario-bad-2"]
    assert sections == [str(link)[1:] for link in links]
    assert "1 passed, 2 failed" in text
    verdicts = [c for c in parsed.text_in.get("scenarios", "").split() if c in ("PASS", "FAIL")]
    assert verdicts[:3] == ["PASS", "PASS", "FAIL"]  # good's verdict, then its expectation; then bad's
    assert [r["data-scenario"] for r in rows if "data-scenario" in r] == ["good one", "bad", "bad"]
    assert "a &lt;b&gt; c" in text
    # Each section's tables have ids of their own: the index's anchors are unique on the page.
    ids = [a["id"] for _, a in parsed.tags if a.get("id")]
    assert len(ids) == len(set(ids))
