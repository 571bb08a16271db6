"""`chargeshare compare-pricing` and `simulate --pricing` at a small size: both runs on one seed, the
same comparison twice, the plot, and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chargeshare.cli.app import app
from tests.cli_runner import CliRunner

runner = CliRunner()
SMALL = ["--chargers", "4", "--drivers", "24", "--duration", "4h", "--start", "2026-03-04T15:00:00Z"]


@pytest.mark.slow
def test_compare_pricing_runs_both_on_one_seed_and_says_the_same_twice(tmp_path: Path) -> None:
    first, second, plot = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "day.png"
    ran = runner.invoke(app, ["compare-pricing", *SMALL, "--json", str(first), "--plot", str(plot)])
    assert ran.exit_code == 0, ran.output
    assert runner.invoke(app, ["compare-pricing", *SMALL, "--json", str(second)]).exit_code == 0
    assert first.read_bytes() == second.read_bytes()
    body = json.loads(first.read_text())
    assert body["ok"] and body["params"]["drivers_max_price_per_kwh"] == [25, 50]
    flat, dynamic = body["flat"], body["dynamic"]
    assert flat["drivers_served"] + flat["drivers_priced_out"] <= 24
    # An afternoon into the evening peak: dynamic prices rise, and more drivers find them too dear.
    assert dynamic["drivers_priced_out"] > flat["drivers_priced_out"]
    assert body["change"]["revenue_pence"] == dynamic["revenue_pence"] - flat["revenue_pence"]
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_simulate_prices_dynamically_when_asked(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    args = ["simulate", "--engine", "des", "--chargers", "4", "--drivers", "12", "--duration", "2h"]
    ran = runner.invoke(app, [*args, "--pricing", "dynamic", "--max-price", "20-60", "--json", str(out)])
    assert ran.exit_code == 0, ran.output
    body = json.loads(out.read_text())
    assert body["params"]["pricing"] == "dynamic"
    pricing = body["summary"]["pricing"]
    assert pricing["quoted_bookings"] == pricing["dynamic_quotes"] == body["summary"]["bookings"] > 0
    assert {i["name"]: i["ok"] for i in body["invariants"]}["capture_matches_quote"]


def test_a_price_range_that_is_not_one_is_refused() -> None:
    for bad in ("50-20", "cheap", "0-10"):
        refused = runner.invoke(app, ["compare-pricing", "--max-price", bad])
        assert refused.exit_code == 2 and "MIN-MAX" in refused.output
    refused = runner.invoke(app, ["simulate", "--engine", "des", "--max-price", "30"])
    assert refused.exit_code == 2 and "MIN-MAX" in refused.output
