"""`chargeshare simulate --engine des` and `chargeshare bench des` at a tiny size: exit codes, byte-identical
reports through the CLI, clear refusals, and the bench's figures (no timing assertions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chargeshare.cli.app import app
from simulators.des.bench import bare_loop
from tests.cli_runner import CliRunner

runner = CliRunner()


def _simulate(out: Path, *extra: str) -> int:
    args = ["simulate", "--engine", "des", "--chargers", "3", "--drivers", "6", "--duration", "60"]
    return runner.invoke(app, [*args, "--seed", "2", "--json", str(out), *extra]).exit_code


def test_simulate_des_writes_the_same_report_twice(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert _simulate(first) == 0
    assert _simulate(second) == 0
    assert first.read_bytes() == second.read_bytes()
    body = json.loads(first.read_text())
    assert body["ok"] and body["params"]["engine"] == "des" and "wall_seconds" not in body


@pytest.mark.slow
def test_simulate_des_report_does_not_depend_on_hash_randomisation(tmp_path: Path) -> None:
    reports = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"h{hash_seed}.json"
        args = ["simulate", "--engine", "des", "--chargers", "3", "--drivers", "6", "--duration", "60"]
        subprocess.run(
            [
                sys.executable,
                "-c",
                "from chargeshare.cli.app import main; main()",
                *args,
                "--json",
                str(out),
            ],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            check=True,
            capture_output=True,
            timeout=300,
        )
        reports.append(out.read_bytes())
    assert reports[0] == reports[1]


def test_simulate_des_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    assert _simulate(tmp_path / "r.json", "--trace", str(tmp_path / "t.jsonl")) == 2
    too_big_for_live = runner.invoke(app, ["simulate", "--chargers", "5000", "--quiet"])
    assert too_big_for_live.exit_code == 2 and "--engine des" in too_big_for_live.output


def test_simulate_des_writes_an_html_report_and_the_same_json(tmp_path: Path) -> None:
    plain, sampled, page = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "r.html"
    assert _simulate(plain) == 0
    assert _simulate(sampled, "--html", str(page)) == 0
    assert plain.read_bytes() == sampled.read_bytes()  # sampling the run for the page changes nothing
    text = page.read_text()
    assert text.count("<svg") == 3 and 'id="invariants"' in text and text.count('class="charger"') == 3
    assert "wall time" not in text  # the page of a DES run is the same for the same seed too
    again = tmp_path / "again.html"
    assert _simulate(sampled, "--html", str(again)) == 0
    assert again.read_bytes() == page.read_bytes()


SCENARIO = Path(__file__).parents[2] / "scenarios" / "happy-path.yaml"


def test_flags_given_with_a_scenario_file_override_it_and_say_so(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    args = ["simulate", str(SCENARIO), "--engine", "des", "--chargers", "5", "--duration", "1h"]
    result = runner.invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "override: --chargers 5 (the file says 8)" in result.output
    assert "override: --duration 1h (the file says 2h)" in result.output
    body = json.loads(out.read_text())
    assert body["overrides"] == {
        "chargers": {"file": 8, "given": 5},
        "duration_s": {"file": 7200, "given": 3600},
    }
    assert body["params"]["chargers"] == 5 and body["params"]["duration_s"] == 3600
    assert body["params"]["seed"] == 11  # not given: the file's


def test_a_scenario_run_without_flags_reports_no_overrides(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["simulate", str(SCENARIO), "--engine", "des", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "overrides" not in json.loads(out.read_text()) and "override" not in result.output


def test_json_to_stdout_alone_with_the_tables_on_stderr() -> None:
    args = ["simulate", "--engine", "des", "--chargers", "3", "--drivers", "6", "--duration", "1h"]
    result = runner.invoke(app, [*args, "--json", "-"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["ok"] and body["params"]["duration_s"] == 3600
    assert "Summary" in result.stderr


def test_bad_durations_and_plot_formats_are_one_line_usage_errors(tmp_path: Path) -> None:
    for args in (
        ["--duration", "soon"],
        ["--duration", "30m2h"],
        ["--duration", "8d"],
        ["--plot", str(tmp_path / "p.html")],
        ["--json", str(tmp_path / "no" / "r.json")],
    ):
        result = runner.invoke(app, ["simulate", *args])
        assert result.exit_code == 2, (args, result.output)
        (line,) = result.output.strip().splitlines()
        assert line.startswith("error: Invalid value for"), line


def test_bench_des_smoke_reports_both_loops(tmp_path: Path) -> None:
    out = tmp_path / "des.json"
    result = runner.invoke(
        app, ["bench", "des", "--chargers", "10", "--duration", "1h", "--radius-km", "5", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert figures["benchmark"] == "des" and figures["invariants_ok"]
    assert figures["chargers"] == figures["drivers"] == 10 and figures["simulated_s"] == 3600
    assert figures["events"] > 0 and figures["frames"] > 0
    # The baseline processes the same number of events, give or take each process's start and end.
    assert abs(figures["bare_events"] - figures["events"]) <= 2 * (figures["chargers"] + figures["drivers"])
    assert figures["ratio"] > 0 and figures["cpu_ratio"] > 0 and "bare SimPy loop" in result.output
    # The interpreter alone holds more than 10 MB: a figure in kB read as bytes would be far under.
    assert figures["peak_rss_mb"] > 10 and "peak RSS" in result.output


def test_bare_loop_processes_the_events_asked_for() -> None:
    events, wall_s, cpu_s = bare_loop(10_000, 50, 3600.0, seed=1)
    assert abs(events - 10_000) <= 100 and wall_s >= 0 and cpu_s >= 0


def test_bench_des_keeps_the_services_warnings_out_of_its_report(tmp_path: Path) -> None:
    """A warning logged during the run (a charger refusing a command, as some do in a large fleet)
    is not printed as a bare line among the figures, as `simulate` keeps it out too (-v shows it)."""
    script = (
        "import logging\n"
        "from simulators.des import bench\n"
        "run = bench.run_bench\n"
        "def noisy(params):\n"
        "    logging.getLogger('chargeshare.ocpp.command_policy').warning('StopCharging to CS9: Rejected')\n"
        "    return run(params)\n"
        "bench.run_bench = noisy\n"
        "from chargeshare.cli.app import main\n"
        "main()\n"
    )
    args = ["bench", "des", "--chargers", "3", "--duration", "1h", "--radius-km", "5"]
    done = subprocess.run(
        [sys.executable, "-c", script, *args, "--json", str(tmp_path / "des.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "StopCharging to CS9" not in done.stdout + done.stderr
    assert "bare SimPy loop" in done.stdout
