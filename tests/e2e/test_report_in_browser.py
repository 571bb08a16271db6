"""A real run's HTML report, rendered by headless Chromium: the page lays out its summary, its
invariants and its plots at a real size, and its screenshot shows the plotted series.

Chromium is Debian's `chromium` package; without it the test is skipped, unless
CHARGESHARE_REQUIRE_SERVICES=1 (CI), where its absence is a failure.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from chargeshare.cli.app import app as cli
from tests.cli_runner import CliRunner
from tests.conftest import service_missing

pytestmark = pytest.mark.e2e

runner = CliRunner()
WIDTH, HEIGHT = 1100, 3200
# Real seconds Chromium may take to start and render one page on a busy machine (it answers in a few).
BROWSER_TIMEOUT_S = 120

SCENARIO = """\
name: browser-check
description: Three chargers, five drivers, one charger off the network for ten minutes.
seed: 5
duration_minutes: 40
speed: 900
fleet:
  chargers: 3
drivers:
  count: 5
faults:
  - {at_minute: 10, action: disconnect, count: 1, minutes: 10}
"""

# Measured in the page once it is laid out, and written into it for --dump-dom to hand back.
PROBE = """<script>
const box = (e) => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
const found = {
  summary: document.querySelectorAll("#summary tr").length,
  invariants: [...document.querySelectorAll("#invariants tr.check")].map(
    (r) => [r.dataset.name, r.dataset.ok, box(r)[1]]),
  svgs: [...document.querySelectorAll("figure svg")].map((s) => [s.dataset.series, ...box(s)]),
  lines: document.querySelectorAll("svg polyline").length,
  faults: document.querySelectorAll("svg .fault").length,
  runEnds: document.querySelectorAll("svg .run-end").length,
  faultRows: document.querySelectorAll("#faults tr.fault").length,
  chargerRows: document.querySelectorAll("#chargers tr.charger").length,
  fetches: performance.getEntriesByType("resource").length,
};
const out = document.createElement("pre");
out.id = "probe";
out.textContent = JSON.stringify(found);
document.body.append(out);
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    service_missing("chromium", "not installed (apt-get install chromium)")


def browse(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",  # tests may run as root, where Chromium's sandbox refuses to start
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",  # its own profile: other browsers on the machine hold theirs
        f"--window-size={WIDTH},{HEIGHT}",
        *args,
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=True)


@dataclass(frozen=True)
class Rendered:
    page: Path
    probe: dict[str, Any]
    screenshot: Path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rendered]:
    chromium()  # skip (or fail in CI) before the run if there is nothing to render it with
    out = tmp_path_factory.mktemp("browser")
    (out / "browser-check.yaml").write_text(SCENARIO)
    page = out / "run.html"
    result = runner.invoke(cli, ["simulate", str(out / "browser-check.yaml"), "--quiet", "--html", str(page)])
    assert result.exit_code == 0, result.output
    probed = out / "probed.html"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = browse(probed, out / "profile", "--dump-dom").stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    shot = out / "run.png"
    browse(page, out / "profile", f"--screenshot={shot}")
    yield Rendered(page, json.loads(html.unescape(found.group(1))), shot)


def test_the_page_lays_out_its_summary_invariants_and_plots(rendered: Rendered) -> None:
    p = rendered.probe
    assert p["summary"] >= 10
    assert len(p["invariants"]) >= 10 and all(ok == "true" for _, ok, _ in p["invariants"])
    assert all(height > 0 for _, _, height in p["invariants"])
    assert [s[0] for s in p["svgs"]] == ["utilisation", "power", "revenue"]
    assert all(width >= 700 and height >= 150 for _, width, height in p["svgs"])
    assert p["lines"] >= 3  # at least one drawn line per plot
    assert p["faults"] == 3 and p["faultRows"] == 1  # the disconnect on each plot, once in the table
    assert p["runEnds"] == 3 and p["chargerRows"] == 3
    assert p["fetches"] == 0  # self-contained: nothing was loaded from anywhere


def test_the_screenshot_shows_the_plotted_series(rendered: Rendered) -> None:
    with Image.open(rendered.screenshot) as image:
        assert image.size == (WIDTH, HEIGHT)
        counts = image.convert("RGB").getcolors(maxcolors=WIDTH * HEIGHT)
    assert counts is not None and len(counts) > 50  # not blank: text, tables and plots
    rgb = [(n, px) for n, px in counts if isinstance(px, tuple)]
    # Each series' own colour (utilisation, power, revenue) is on screen, so each line was drawn.
    for colour in ((0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E), (0x2C, 0xA0, 0x2C)):
        near = [n for n, px in rgb if max(abs(a - b) for a, b in zip(px, colour, strict=True)) <= 12]
        assert sum(near) >= 50, colour
