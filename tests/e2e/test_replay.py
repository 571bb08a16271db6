"""Record a real live run (`chargeshare simulate --trace`), replay it into a fresh backend, and catch
corrupted traces and a mutated backend. The vendor's case: a frames-only trace of one charger."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.cli.app import app as cli
from chargeshare.domain.tariff import Tariff
from simulators.replay import VENDOR_PRICE_PER_KWH, ReplayReport, replay
from simulators.trace import read_trace
from tests.cli_runner import CliRunner

pytestmark = pytest.mark.e2e

runner = CliRunner()
VENDOR_TRACE = Path(__file__).parents[2] / "docs" / "examples" / "vendor-trace-1.6.jsonl"


@dataclass(frozen=True)
class Recorded:
    trace: Path
    report: dict[str, Any]
    plot: Path
    output: str


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """One small, fast live run over real WebSockets and HTTP, recorded (about ten seconds)."""
    out = tmp_path_factory.mktemp("recorded")
    args = ["simulate", "--chargers", "4", "--drivers", "8", "--duration", "60", "--speed", "600"]
    args += ["--seed", "3", "--trace", str(out / "run.jsonl"), "--plot", str(out / "run.png")]
    args += ["--json", str(out / "run.json")]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.stdout
    report = json.loads((out / "run.json").read_text())
    yield Recorded(out / "run.jsonl", report, out / "run.png", result.stdout)


def run_replay(path: Path) -> ReplayReport:
    return asyncio.run(replay(read_trace(path)))


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def write_lines(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_simulate_records_a_trace_a_plot_and_logs_progress_off_a_terminal(recorded: Recorded) -> None:
    kinds = {x["kind"] for x in lines_of(recorded.trace)}
    assert {"header", "charger", "ocpp", "http", "op"} <= kinds
    windows = [x for x in lines_of(recorded.trace) if x.get("op") == "window"]
    assert [x["duration_s"] for x in windows] == [3600]
    assert recorded.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # CliRunner is no terminal: plain progress lines, no redrawn panel.
    progress = [x for x in recorded.output.splitlines() if x.startswith("sim ")]
    assert 2 <= len(progress) <= 12
    assert all("online" in x and "faults" in x and "captured" in x for x in progress)


def test_replay_reproduces_the_run(recorded: Recorded, tmp_path: Path) -> None:
    # Seed 3's drivers charge (four sessions): a run that charged nobody would replay nothing worth
    # comparing, so it is a failure here, not a skip.
    assert recorded.report["summary"]["sessions"] > 0, recorded.report["summary"]
    report, plot = tmp_path / "replay.json", tmp_path / "replay.html"
    args = ["replay", str(recorded.trace), "--json", str(report), "--html", str(plot)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.stdout
    body = json.loads(report.read_text())
    assert body["ok"] and all(r["ok"] for r in body["invariants"] + body["charger_checks"])
    live, again = recorded.report["summary"], body["summary"]
    for key in ("bookings", "sessions", "energy_wh", "captured_pence", "host_payouts_pence"):
        assert again[key] == live[key], key
    assert body["divergence_count"] == 0, body["divergences"]
    page = plot.read_text()
    assert page.count("<svg") == 3 and 'data-series="revenue"' in page
    assert page.count('class="run-end"') == 3  # the recorded run's window, from its trace


def test_a_stop_repeated_with_another_meter_reading_is_caught(recorded: Recorded, tmp_path: Path) -> None:
    lines = lines_of(recorded.trace)
    at = next(
        i for i, x in enumerate(lines) if x.get("dir") == "in" and '"StopTransaction"' in x.get("frame", "")
    )
    frame = json.loads(lines[at]["frame"])
    frame[1] = f"{frame[1]}-again"
    frame[3]["meterStop"] += 5_000
    lines.insert(at + 1, {**lines[at], "frame": json.dumps(frame)})
    corrupt, report = write_lines(tmp_path / "corrupt.jsonl", lines), tmp_path / "report.json"
    result = runner.invoke(cli, ["replay", str(corrupt), "--json", str(report)])
    assert result.exit_code == 1, result.stdout
    body = json.loads(report.read_text())
    assert [c["name"] for c in body["charger_checks"] if not c["ok"]] == ["charger_stops_agree"]
    # The backend itself kept the first stop: its books still hold.
    assert all(r["ok"] for r in body["invariants"])


def test_a_backend_that_captures_twice_fails_the_replay(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert recorded.report["summary"]["captured_pence"] > 0, "a double capture needs a capture to repeat"
    real_capture = SimulatedGateway.capture

    def capture_twice(self: SimulatedGateway, *, reference: str, amount: int, idempotency_key: str) -> None:
        real_capture(self, reference=reference, amount=amount, idempotency_key=idempotency_key)
        with self.books.open() as books:  # the card is charged a second time
            hold = books.hold(reference)
            assert hold is not None
            hold.captured += amount
            books.save(hold)

    monkeypatch.setattr(SimulatedGateway, "capture", capture_twice)
    result = run_replay(recorded.trace)
    assert not result.ok
    assert [r.name for r in result.run.invariants if not r.ok] == ["gateway_agrees_with_ledger"]


def vendor_stop(lines: list[dict[str, Any]]) -> tuple[int, int]:
    frames = [json.loads(x["frame"]) for x in lines if x.get("dir") == "in"]
    start = next(f[3] for f in frames if f[2] == "StartTransaction")
    stop = next(f[3] for f in frames if f[2] == "StopTransaction")
    return int(start["meterStart"]), int(stop["meterStop"])


@pytest.mark.parametrize("answers", [True, False], ids=["with-csms-answers", "charger-frames-only"])
def test_a_vendor_trace_of_one_charger_replays(tmp_path: Path, answers: bool) -> None:
    lines = lines_of(VENDOR_TRACE)
    if not answers:
        lines = [x for x in lines if x.get("dir") != "out"]
    result = run_replay(write_lines(tmp_path / "vendor.jsonl", lines))
    assert result.ok, (result.run.invariants, result.run.errors)
    meter_start, meter_stop = vendor_stop(lines)
    s = result.run.summary
    assert s["sessions"] == 1 and s["energy_wh"] == meter_stop - meter_start
    assert s["captured_pence"] == Tariff(VENDOR_PRICE_PER_KWH).cost(meter_stop - meter_start)
    assert result.fed["ocpp"] == sum(1 for x in lines if x.get("dir") == "in")


def test_a_vendor_meter_running_backwards_is_caught(tmp_path: Path) -> None:
    lines = lines_of(VENDOR_TRACE)
    meters = [i for i, x in enumerate(lines) if '"MeterValues"' in x.get("frame", "")]
    frame = json.loads(lines[meters[-1]]["frame"])
    frame[3]["meterValue"][0]["sampledValue"][0]["value"] = "1"
    lines[meters[-1]]["frame"] = json.dumps(frame)
    result = run_replay(write_lines(tmp_path / "backwards.jsonl", lines))
    assert [c.name for c in result.charger_checks if not c.ok] == ["charger_register_never_decreases"]
    assert not result.ok


def test_a_bad_line_stops_the_replay_before_anything_runs(tmp_path: Path) -> None:
    lines = lines_of(VENDOR_TRACE)
    del lines[4]["cp"]
    result = runner.invoke(cli, ["replay", str(write_lines(tmp_path / "bad.jsonl", lines))])
    assert result.exit_code == 2
    assert "bad.jsonl:5:" in result.stdout and "'cp'" in result.stdout
    assert "Replayed" not in result.stdout


TINY_SCENARIO = """\
name: tiny-traced
description: Two chargers and three drivers for a short window, traced and plotted.
seed: 3
duration_minutes: 40
speed: 900
fleet:
  chargers: 2
drivers:
  count: 3
"""


def test_scenario_run_writes_a_trace_and_a_plot_per_scenario_and_an_index(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY_SCENARIO)
    out = tmp_path / "out" / "new"  # not there yet: the run makes it
    args = ["scenario", "run", str(tmp_path / "tiny.yaml"), "--trace-dir", str(out), "--plot-dir", str(out)]
    result = runner.invoke(cli, [*args, "--json", "-", "--html", str(tmp_path / "index.html")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["scenarios"][0]["name"] == "tiny-traced"  # the JSON alone
    assert (out / "tiny-traced.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    index = (tmp_path / "index.html").read_text()
    assert '<a href="#scenario-tiny-traced">tiny-traced</a>' in index
    assert '<section class="scenario" id="scenario-tiny-traced">' in index and index.count("<svg") == 3
    trace = read_trace(out / "tiny-traced.jsonl")  # the format replay reads (replays are tested above)
    assert trace.header["params"]["chargers"] == 2
    assert {r.data["cp"] for r in trace.records if r.kind == "ocpp"} == {"CS00001", "CS00002"}
    under_a_file = runner.invoke(cli, [*args[:3], "--plot-dir", str(tmp_path / "tiny.yaml" / "plots")])
    assert under_a_file.exit_code == 2 and "cannot make directory" in under_a_file.output


@pytest.mark.postgres
def test_replay_on_postgresql_reproduces_the_run(recorded: Recorded, postgres_url: str) -> None:
    result = asyncio.run(replay(read_trace(recorded.trace), database_url=postgres_url))
    assert result.ok, (result.run.invariants, result.run.errors)
    live, again = recorded.report["summary"], result.run.summary
    for key in ("bookings", "sessions", "energy_wh", "captured_pence"):
        assert again[key] == live[key], key


VENDOR_TRACE_201 = VENDOR_TRACE.with_name("vendor-trace-2.0.1.jsonl")


def ended_again(lines: list[dict[str, Any]], reading_wh: int) -> list[dict[str, Any]]:
    """The same transaction ended a second time, with another final reading."""
    at = next(i for i, x in enumerate(lines) if '"Ended"' in x.get("frame", ""))
    frame = json.loads(lines[at]["frame"])
    frame[1] = f"{frame[1]}-again"
    frame[3]["seqNo"] += 1
    frame[3]["meterValue"][0]["sampledValue"][0]["value"] = reading_wh
    return [*lines[: at + 1], {**lines[at], "frame": json.dumps(frame)}, *lines[at + 1 :]]


def test_a_vendor_trace_in_ocpp_201_replays_and_its_checks_apply(tmp_path: Path) -> None:
    lines = lines_of(VENDOR_TRACE_201)
    events = [json.loads(x["frame"])[3] for x in lines if '"TransactionEvent"' in x.get("frame", "")]
    readings = [e["meterValue"][0]["sampledValue"][0]["value"] for e in events]
    result = run_replay(VENDOR_TRACE_201)
    assert result.ok, (result.run.invariants, result.run.errors, result.divergences)
    s = result.run.summary
    assert s["sessions"] == 1 and s["energy_wh"] == readings[-1] - readings[0]
    assert s["captured_pence"] == Tariff(VENDOR_PRICE_PER_KWH).cost(readings[-1] - readings[0])
    corrupt = run_replay(write_lines(tmp_path / "ended-twice.jsonl", ended_again(lines, readings[-1] + 700)))
    assert [c.name for c in corrupt.charger_checks if not c.ok] == ["charger_stops_agree"]
