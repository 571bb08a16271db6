"""Trace files are checked line by line before anything runs; timelines and plots carry three series
(the run reports' pages: test_run_reports.py)."""

from __future__ import annotations

import json
import re
import struct
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargeshare.domain.booking import CancellationPolicy
from chargeshare.services.rules import MarketplaceRules
from simulators.plots import build_figure, write_plot
from simulators.timeline import Sample, Timeline
from simulators.trace import FORMAT, FORMAT_VERSION, TraceError, read_trace
from tests.conftest import examples

HEADER = {"kind": "header", "format": FORMAT, "version": FORMAT_VERSION}
FRAME = {
    "t": "2026-03-02T09:00:00Z",
    "kind": "ocpp",
    "cp": "CP1",
    "dir": "in",
    "version": "1.6",
    "frame": '[2,"1","Heartbeat",{}]',
}


def write(tmp_path: Path, *lines: object) -> Path:
    path = tmp_path / "t.jsonl"
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_a_good_trace_reads_in_order(tmp_path: Path) -> None:
    http = {"t": "2026-03-02T09:01:00+00:00", "kind": "http", "method": "GET", "path": "/health"}
    trace = read_trace(write(tmp_path, HEADER, FRAME, {**http, "status": 200, "response": {"status": "ok"}}))
    assert [r.kind for r in trace.records] == ["ocpp", "http"]
    assert [r.line for r in trace.records] == [2, 3]
    assert trace.start == trace.records[0].t


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({k: v for k, v in FRAME.items() if k != "cp"}, "'cp'"),
        ({**FRAME, "dir": "sideways"}, "'dir'"),
        ({**FRAME, "version": "1.5"}, "'version'"),
        ({**FRAME, "t": "2026-03-02T09:00:00"}, "'t'"),  # no UTC offset
        ({**FRAME, "kind": "smoke"}, "'kind'"),
        ({**FRAME, "frame": ["not", "text"]}, "'frame'"),
        ({"t": FRAME["t"], "kind": "http", "method": "BREW", "path": "/", "status": 200}, "'method'"),
        ({"t": FRAME["t"], "kind": "http", "method": "GET", "path": "/", "status": 999}, "'status'"),
        ({"t": FRAME["t"], "kind": "op", "op": "explode"}, "'op'"),
        ({"t": FRAME["t"], "kind": "op", "op": "window"}, "'duration_s'"),
    ],
)
def test_a_bad_line_is_named_with_its_field(tmp_path: Path, record: dict[str, object], field: str) -> None:
    path = write(tmp_path, HEADER, FRAME, record, FRAME)
    with pytest.raises(TraceError) as caught:
        read_trace(path)
    message = str(caught.value)
    assert f"{path}:3:" in message and field in message
    assert ":2:" not in message and ":4:" not in message


def test_the_window_op_says_where_the_run_began(tmp_path: Path) -> None:
    window = {"t": "2026-03-02T09:14:00Z", "kind": "op", "op": "window", "duration_s": 3600}
    trace = read_trace(write(tmp_path, HEADER, FRAME, window, FRAME))
    assert trace.start is not None and trace.window_start is not None
    assert (trace.window_start - trace.start).total_seconds() == 14 * 60
    assert trace.window_end is not None and (trace.window_end - trace.window_start).total_seconds() == 3600
    assert read_trace(write(tmp_path, HEADER, FRAME)).window_start is None


def test_header_problems_and_non_json_lines(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r":1: field 'kind'"):
        read_trace(write(tmp_path, FRAME))
    with pytest.raises(TraceError, match=r":1: field 'version'"):
        read_trace(write(tmp_path, {**HEADER, "version": 99}))
    with pytest.raises(TraceError, match=r":2: not JSON"):
        read_trace(write(tmp_path, HEADER, "{oops"))
    with pytest.raises(TraceError, match=r"field 'rules'"):
        read_trace(write(tmp_path, {**HEADER, "rules": {"no_such_rule": 1}}))


def test_rules_round_trip_through_the_header(tmp_path: Path) -> None:
    rules = replace(MarketplaceRules(platform_fee_bps=900), cancellation=CancellationPolicy(no_show_fee=123))
    trace = read_trace(write(tmp_path, {**HEADER, "rules": asdict(rules)}))
    assert trace.rules == rules


def sample(t_s: float, charging: int, energy_wh: int, pence: int) -> Sample:
    return Sample(t_s, 2, 2, 0, charging, 4, charging, 1, charging, energy_wh, pence)


TIMELINE = Timeline([sample(0, 0, 0, 0), sample(600, 2, 1_000, 0), sample(1200, 1, 4_000, 250)])


def test_power_is_energy_over_time_and_utilisation_a_share() -> None:
    # 1 kWh in 10 minutes is 6 kW; 3 kWh in the next 10 minutes is 18 kW.
    assert TIMELINE.power_kw() == [0.0, pytest.approx(6.0), pytest.approx(18.0)]
    assert TIMELINE.utilisation_pct() == [0.0, 50.0, 25.0]
    assert TIMELINE.minutes() == [0.0, 10.0, 20.0]


def test_power_is_averaged_over_a_window_of_samples() -> None:
    # Readings every two minutes, sampled every minute (60 kW throughout): one-minute deltas swing
    # between 0 and 120 kW; five minutes of samples hold it near 60.
    steps = Timeline([sample(60 * m, 1, 1_000 * (m - m % 2), 0) for m in range(12)])
    assert steps.power_kw(window_s=60) == [
        0.0,
        0.0,
        120.0,
        0.0,
        120.0,
        0.0,
        120.0,
        0.0,
        120.0,
        0.0,
        120.0,
        0.0,
    ]
    smooth = steps.power_kw(window_s=300)
    assert smooth[6:] == [pytest.approx(72.0), pytest.approx(48.0)] * 3


def test_readings_that_arrive_in_a_burst_never_draw_more_than_the_fleet_can() -> None:
    # A 14.8 kW fleet: 7.4 kW for an hour goes unreported (the charger was offline), then arrives at
    # once. The plot puts it back where there was room, never above 14.8 kW, and loses none of it.
    fleet = [
        Sample(600 * m, 2, 2, 0, 1, 2, 1, 1, 1, 0 if m < 6 else 7_400 + 1_233 * (m - 6), 0, capacity_w=14_800)
        for m in range(9)
    ]
    power = Timeline(fleet).power_kw(window_s=600)
    assert max(power) <= 14.8 + 1e-9
    drawn = Timeline(fleet).drawn_wh()
    assert drawn[-1] == pytest.approx(fleet[-1].energy_wh)
    assert drawn == sorted(drawn)
    # Without a known capacity (older traces), the burst shows as it arrived.
    raw = [replace(s, capacity_w=0) for s in fleet]
    assert max(Timeline(raw).power_kw(window_s=600)) == pytest.approx(7_400 / 1000 * 6)


@pytest.mark.slow
def test_the_figure_has_the_three_series() -> None:
    figure = build_figure(TIMELINE, title="t")
    lines = [ax.get_lines() for ax in figure.axes]
    assert [len(x) for x in lines] == [1, 1, 1]
    labels = [x[0].get_label() for x in lines]
    assert labels == ["Utilisation (connectors charging)", "Power drawn", "Revenue captured (cumulative)"]
    revenue: Any = lines[2][0].get_ydata()
    assert [float(y) for y in revenue] == [0, 0, 2.5]  # pounds on the axis


def test_png_is_written(tmp_path: Path) -> None:
    out = tmp_path / "run.png"
    write_plot(out, TIMELINE, title="t")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 100 and height > 100


def test_svg_is_written_and_other_extensions_refused(tmp_path: Path) -> None:
    out = tmp_path / "run.svg"
    write_plot(out, TIMELINE, title="t")
    assert "<svg" in out.read_text()[:500]
    with pytest.raises(ValueError, match=r"a plot is a \.png or an \.svg file"):
        write_plot(tmp_path / "run.html", TIMELINE, title="t")
    assert not (tmp_path / "run.html").exists()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
record_like = st.fixed_dictionaries(
    {},
    optional={
        "t": st.sampled_from(["2026-03-02T09:00:00Z", "yesterday", 5]) | json_values,
        "kind": st.sampled_from(["ocpp", "http", "host", "charger", "op", "header"]) | json_values,
        "cp": json_values,
        "dir": st.sampled_from(["in", "out"]) | json_values,
        "version": st.sampled_from(["1.6", "2.0.1"]) | json_values,
        "frame": json_values,
        "method": st.sampled_from(["GET", "POST"]) | json_values,
        "path": json_values,
        "status": json_values,
        "op": st.sampled_from(["reconcile", "charger_offline"]) | json_values,
        "id": json_values,
        "connectors": json_values,
    },
)


@settings(
    max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(record_like | json_values, max_size=4))
@pytest.mark.slow
def test_any_line_is_read_or_refused_with_its_line_number(tmp_path: Path, lines: list[object]) -> None:
    path = write(tmp_path, HEADER, *[json.dumps(x) for x in lines])
    try:
        trace = read_trace(path)
    except TraceError as exc:
        assert re.search(rf"{re.escape(str(path))}:\d+: ", str(exc))
    else:
        assert len(trace.records) == len(lines)
