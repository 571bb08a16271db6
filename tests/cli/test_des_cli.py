"""`chargeshare simulate --engine des` and `chargeshare bench des` at a tiny size: exit codes, byte-identical
reports through the CLI, clear refusals, and the bench's figures (no timing assertions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chargeshare.benchmarks.des import bare_loop
from chargeshare.cli.app import app

runner = CliRunner()


def _simulate(out: Path, *extra: str) -> int:
    args = ["simulate", "--engine", "des", "--chargers", "3", "--drivers", "6", "--duration", "60"]
    return runner.invoke(app, [*args, "--seed", "2", "--report", str(out), *extra]).exit_code


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
                "--report",
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


def test_bench_des_smoke_reports_both_loops(tmp_path: Path) -> None:
    out = tmp_path / "des.json"
    result = runner.invoke(
        app, ["bench", "des", "--chargers", "10", "--hours", "1", "--radius-km", "5", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert figures["benchmark"] == "des" and figures["invariants_ok"]
    assert figures["chargers"] == figures["drivers"] == 10 and figures["simulated_s"] == 3600
    assert figures["events"] > 0 and figures["frames"] > 0
    # The baseline processes the same number of events, give or take each process's start and end.
    assert abs(figures["bare_events"] - figures["events"]) <= 2 * (figures["chargers"] + figures["drivers"])
    assert figures["ratio"] > 0 and figures["cpu_ratio"] > 0 and "bare SimPy loop" in result.output


def test_bare_loop_processes_the_events_asked_for() -> None:
    events, wall_s, cpu_s = bare_loop(10_000, 50, 3600.0, seed=1)
    assert abs(events - 10_000) <= 100 and wall_s >= 0 and cpu_s >= 0
