from __future__ import annotations

import json
from pathlib import Path

import pytest

from chargeshare import __version__
from chargeshare.cli.app import app
from tests.cli_runner import CliRunner

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and result.stdout.strip() == __version__


@pytest.mark.slow
def test_simulate_writes_a_report_and_exits_zero(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = runner.invoke(
        app,
        [
            "simulate",
            "--chargers",
            "4",
            "--drivers",
            "6",
            "--duration",
            "40",
            "--speed",
            "1200",
            "--seed",
            "5",
            "--protocols",
            "1.6,2.0.1,2.1",
            "--json",
            str(out),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.stdout
    assert result.stdout.strip() == "all invariants hold"  # -q: the verdict only
    report = json.loads(out.read_text())
    assert report["ok"] is True and report["params"]["seed"] == 5
    assert report["params"]["protocols"] == ["1.6", "2.0.1", "2.1"]
    assert {r["name"] for r in report["invariants"]} >= {
        "no_overlapping_bookings",
        "journal_balanced",
        "captured_equals_metered_cost",
        "every_hold_ended",
    }


def test_simulate_rejects_bad_arguments(tmp_path: Path) -> None:
    assert runner.invoke(app, ["simulate", "--city", "atlantis"]).exit_code == 2
    assert runner.invoke(app, ["simulate", "--chargers", "0"]).exit_code == 2
    assert runner.invoke(app, ["simulate", "--protocols", "1.6,2.2"]).exit_code == 2
    assert runner.invoke(app, ["simulate", "--json", str(tmp_path / "no" / "such" / "r.json")]).exit_code == 2


def test_serve_reports_an_unusable_configuration() -> None:
    result = runner.invoke(app, ["serve"], env={"CHARGESHARE_PLATFORM_FEE_BPS": "fifteen percent"})
    assert result.exit_code == 2
    assert "CHARGESHARE_PLATFORM_FEE_BPS must be an integer" in result.output
