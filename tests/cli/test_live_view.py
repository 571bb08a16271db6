"""The live view of `chargeshare simulate`: a panel on a terminal, plain lines in a log."""

from __future__ import annotations

import io

from rich.console import Console

from chargeshare.cli.live_view import LOG_STEPS, LiveView
from chargeshare.domain.money import format_gbp, format_kwh
from simulators.timeline import Sample, Timeline

SAMPLE = Sample(
    t_s=1800,
    chargers=5,
    online=4,
    offline=1,
    charging=2,
    connectors=5,
    connectors_charging=2,
    sessions=7,
    open_sessions=2,
    energy_wh=12_345,
    captured_pence=678,
    faults_fired=3,
    drivers_done=6,
    conflicts=1,
)


def test_on_a_terminal_the_panel_shows_fleet_sessions_money_and_faults() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    timeline = Timeline()
    with LiveView(console, minutes=60, drivers=10, timeline=timeline) as view:
        view.update(1800, {"sample": SAMPLE})
    text = out.getvalue()
    for expected in ("online", "4/5", "offline", "charging", "40% of connectors", "faults fired"):
        assert expected in text
    assert format_kwh(SAMPLE.energy_wh) in text and format_gbp(SAMPLE.captured_pence) in text
    assert "6/10" in text and "30 / 60 min" in text
    assert timeline.samples == [SAMPLE]


def test_off_a_terminal_it_prints_a_plain_line_per_tenth_of_the_run() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with LiveView(console, minutes=60, drivers=10, timeline=Timeline()) as view:
        for minute in range(61):
            view.update(minute * 60, {"sample": SAMPLE})
        view.update(3600, {"sample": SAMPLE, "final": True})
    lines = out.getvalue().splitlines()
    assert len(lines) == LOG_STEPS + 1  # minute 0, every sixth minute, and the end
    assert "\x1b[" not in out.getvalue()  # no cursor movement or colour in a log
    assert all("4 online, 1 offline, 2 charging" in line and "faults 3" in line for line in lines)
