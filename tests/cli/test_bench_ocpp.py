"""`chargeshare bench ocpp` at a tiny size: the report's shape, that both servers answered every call and
hold every charger's last reading, and that the load's frames are valid OCPP (no timing assertions)."""

from __future__ import annotations

import asyncio
import gc
import json
import resource
import time
from pathlib import Path

import pytest

from chargeshare.benchmarks import ocpp_load
from chargeshare.benchmarks.ocpp import (
    BenchUnfit,
    SizeResult,
    TargetRun,
    check_messages,
    ensure_file_limit,
    frames_for,
    paced_readings,
)
from chargeshare.benchmarks.ocpp_cluster import sample_indexes
from chargeshare.benchmarks.ocpp_load import MIX, ChargerPlan, LightCharger, LoadParams, PhaseResult, paced
from chargeshare.benchmarks.ocpp_servers import _register_wh
from chargeshare.cli.app import app
from chargeshare.entrypoints.serving import YOUNG_THRESHOLD
from chargeshare.ocpp import V16
from chargeshare.ocpp.frames import CALL, Call, check_payload, parse
from tests.cli_runner import CliRunner
from tests.conftest import REDIS_URL

runner = CliRunner()


@pytest.mark.slow
def test_bench_ocpp_smoke_both_servers_answer_everything(tmp_path: Path) -> None:
    out = tmp_path / "ocpp.json"
    result = runner.invoke(
        app,
        [
            "bench",
            "ocpp",
            "--chargers",
            "20",
            "--messages",
            "100",
            "--paced",
            "2s",
            "--slow-provider",
            "0",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "ours/baseline" in result.output and "round trips/s" in result.output
    report = json.loads(out.read_text())
    assert report["benchmark"] == "ocpp" and report["ok"] is True and report["target_ratio"] == 2.0
    assert report["params"]["chargers"] == [20] and report["params"]["backend"] == "sqlite"
    (size,) = report["sizes"]
    runs = {r["target"]: r for r in size["runs"]}
    assert set(runs) == {"ours", "baseline", "tuned"}
    for r in runs.values():
        load = r["load"]
        assert load["connected"] == 20 and load["transactions"] == 20 and r["stored_ok"] == 20
        assert r["all_answered"] is True
        setup, thr, paced = load["setup"], load["throughput"], load["paced"]
        assert setup["answered"] == setup["sent"] == 80
        assert thr["answered"] == thr["sent"] == 100 and thr["call_errors"] == thr["failures"] == 0
        # The same mix for both servers: 8 MeterValues : 1 Heartbeat : 1 StatusNotification.
        assert thr["by_action"] == {"Heartbeat": 10, "MeterValues": 80, "StatusNotification": 10}
        assert thr["round_trips_per_s"] > 0 and thr["p99_ms"] >= thr["p50_ms"] > 0
        # 2 s of a 10 s pace, staggered over 20 chargers: the first four send once each.
        assert paced["answered"] == paced["sent"] == 4
    ours, base, tuned = (
        runs[t]["load"]["throughput"]["round_trips_per_s"] for t in ("ours", "baseline", "tuned")
    )
    assert size["throughput_ratio"] == pytest.approx(ours / base, abs=2e-3)  # rounded to 3 places
    # Against the library at its best: its tuned run, or its defaults' if those happened to be faster.
    assert size["tuned_ratio"] == pytest.approx(ours / max(base, tuned), abs=2e-3)
    assert report["target_tuned_ratio"] == 1.5 and "ours/tuned" in result.output
    assert runs["tuned"]["server"]["handled"]["MeterValues"] == 84
    for r in runs.values():  # resident memory while serving, put per charger
        server = r["server"]
        assert server["rss_peak_bytes"] >= server["rss_ready_bytes"] > 0
        assert server["bytes_per_connection"] == round(
            (server["rss_peak_bytes"] - server["rss_ready_bytes"]) / 20
        )
    assert size["meets_paced_target"] is None  # the p99 target is stated at 5,000 chargers
    assert runs["baseline"]["server"]["handled"]["MeterValues"] == 84  # 80 + 4 paced
    assert "slow_provider" not in runs["ours"]["load"] and size["meets_slow_provider_target"] is None


@pytest.mark.slow  # other processes
def test_bench_ocpp_runs_the_servers_asked_for_at_the_pace_asked_for(tmp_path: Path) -> None:
    out = tmp_path / "ocpp.json"
    args = ["--chargers", "10", "--paced", "2s", "--paced-interval", "1s"]  # frames: the default
    result = runner.invoke(
        app, ["bench", "ocpp", *args, "--slow-provider", "0", "--servers", "tuned,ours", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["ok"] is True and report["params"]["servers"] == ["ours", "tuned"]
    assert report["params"]["pace_interval_s"] == 1.0
    assert report["params"]["messages"] is None and report["params"]["frames_per_charger"] == 20
    (size,) = report["sizes"]
    runs = {r["target"]: r for r in size["runs"]}
    assert set(runs) == {"ours", "tuned"} and size["throughput_ratio"] is None
    assert size["tuned_ratio"] > 0
    for r in runs.values():  # 2 s of a 1 s pace: two readings per charger
        assert r["load"]["throughput"]["answered"] == 200  # 20 frames for each of the 10
        paced = r["load"]["paced"]
        assert paced["answered"] == paced["sent"] == 20


@pytest.mark.slow  # another process
def test_bench_ocpp_slow_provider_phase_smoke(tmp_path: Path) -> None:
    out = tmp_path / "slow.json"
    args = ["--chargers", "10", "--messages", "20", "--paced", "0", "--slow-provider", "1"]
    result = runner.invoke(app, ["bench", "ocpp", *args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "Slow provider" in result.output and "p99 during/before" in result.output
    report = json.loads(out.read_text())
    assert report["ok"] is True and report["params"]["slow_provider_s"] == 1.0
    assert report["target_slow_provider_p99_ms"] == 50.0
    (size,) = report["sizes"]
    runs = {r["target"]: r for r in size["runs"]}
    ours, base = runs["ours"], runs["baseline"]
    assert ours["all_answered"] is True and ours["stored_ok"] == 10  # the stopped session too
    slow = ours["load"]["slow_provider"]
    assert (slow["stoppers"], slow["measured_chargers"]) == (1, 9)
    assert slow["stops"]["answered"] == slow["stops"]["sent"] == 1
    for half in ("before", "during"):  # one frame per charger per 1 s half, reading and heartbeat in turn
        figures = slow[half]
        assert figures["answered"] == figures["sent"] == 9 and figures["failures"] == 0
        assert figures["by_action"] == {"Heartbeat": 4, "MeterValues": 5}
        assert figures["p99_ms"] >= figures["p50_ms"] > 0
    # The stop's capture was asked once, answered after the delay, and never on the event loop.
    assert ours["server"]["captures"] == {"delay_s": 1.0, "asked": 1, "answered": 1, "on_event_loop": 0}
    assert size["slow_provider_p99_ratio"] > 0
    assert size["meets_slow_provider_target"] is None  # stated at 1,000 chargers, a 12 s provider
    # The baseline takes no payments: it has no such phase.
    assert "slow_provider" not in base["load"] and "captures" not in base["server"]


def test_bench_ocpp_rejects_bad_arguments(tmp_path: Path) -> None:
    for args in (
        ["--chargers", "0"],
        ["--chargers", "ten"],
        ["--chargers", ""],
        ["--backend", "both"],
        ["--paced", "11m"],
        ["--slow-provider", "soon"],
        ["--paced-interval", "0"],
        ["--paced-interval", "11m"],
        ["--servers", "ours,library"],
        ["--servers", "ours,ours"],
        ["--servers", ""],
        ["--chargers", "20001"],
    ):
        result = runner.invoke(app, ["bench", "ocpp", *args])
        assert result.exit_code == 2, (args, result.output)
    too_many = runner.invoke(app, ["bench", "ocpp", "--chargers", "10", "--messages", "100000"])
    assert too_many.exit_code == 2 and "energy limit" in too_many.output
    missing = runner.invoke(app, ["bench", "ocpp", "--json", str(tmp_path / "no" / "o.json")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_too_few_open_files_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (1024, 2048))
    with pytest.raises(BenchUnfit, match="5,000 chargers need at least 5,100 open files"):
        ensure_file_limit(5000)
    # A hard limit of 20,000 files (as on the machine the figures came from) fits 19,900 chargers.
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (20_000, 20_000))
    assert ensure_file_limit(19_900) == 20_000
    with pytest.raises(BenchUnfit, match=r"limit is 20,000 \(hard 20,000\).*at most 19,900 chargers"):
        ensure_file_limit(20_000)


def test_a_slower_pace_leaves_room_for_more_throughput_frames() -> None:
    # 600 s at one reading per 10 s is 61 readings each; at one per 60 s, 11.
    assert paced_readings(600, 10) == 61 and paced_readings(600, 60) == 11 and paced_readings(30, 60) == 1
    with pytest.raises(BenchUnfit, match="energy limit"):
        check_messages((10,), 10 * 5_930, 600, 10)
    check_messages((10,), 10 * 5_930, 600, 60)


def test_ratios_need_ours_and_a_library_run() -> None:
    def run(target: str, rate: float, chargers: int = 5_000) -> TargetRun:
        load = {"throughput": {"round_trips_per_s": rate}, "paced": {"p99_ms": 20.0}}
        return TargetRun(target, chargers, load, {}, 0)

    ours_only = SizeResult(5_000, 0.0, {"ours": run("ours", 3_000)})
    assert (ours_only.throughput_ratio, ours_only.tuned_ratio, ours_only.meets_tuned) == (None, None, None)
    assert ours_only.meets_paced is True  # stated from 5,000 chargers up
    with_tuned = SizeResult(5_000, 0.0, {"ours": run("ours", 3_000), "tuned": run("tuned", 2_000)})
    assert with_tuned.throughput_ratio is None and with_tuned.tuned_ratio == 1.5 and with_tuned.meets_tuned
    library_only = SizeResult(20_000, 0.0, {"tuned": run("tuned", 2_000, 20_000)})
    assert library_only.tuned_ratio is None and library_only.meets_paced is None


def test_the_load_sends_valid_ocpp_frames() -> None:
    charger = LightCharger(ChargerPlan("CP1", "TAG1"), ws=None)  # type: ignore[arg-type]
    charger.transaction_id = 7
    frames = [charger.frame(action, "2026-01-01T00:00:00Z") for action in MIX]
    frames.append(charger.custom("BootNotification", '{"chargePointVendor":"v","chargePointModel":"m"}'))
    for f in frames:
        call = parse(f.text)
        assert isinstance(call, Call) and call.action == f.action and call.unique_id == f.unique_id
        check_payload(call.action, call.payload, V16, CALL, call.unique_id)
    assert len({f.unique_id for f in frames}) == len(frames)
    readings = [f.register_wh or 0 for f in frames if f.action == "MeterValues"]
    assert readings == sorted(readings) and len(set(readings)) == 8
    meter = parse(frames[0].text)
    assert isinstance(meter, Call) and meter.payload["transactionId"] == 7
    # The baseline reads the same register our handler does (its payload arrives in snake_case).
    snake = [{"sampled_value": [{"value": "1.5", "unit": "kWh"}, {"value": "9", "phase": "L1"}]}]
    assert _register_wh(snake) == 1500


@pytest.mark.postgres
def test_bench_ocpp_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    # The fixture's database serves as the "admin" connection; the bench makes and drops its own.
    out = tmp_path / "ocpp.json"
    args = ["--chargers", "10", "--messages", "50", "--paced", "0", "--backend", "postgres"]
    result = runner.invoke(app, ["bench", "ocpp", *args, "--postgres-url", postgres_url, "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["ok"] is True and report["params"]["backend"] == "postgres"
    (size,) = report["sizes"]
    for r in size["runs"]:
        assert r["stored_ok"] == 10 and r["load"]["throughput"]["answered"] == 50
        assert "paced" not in r["load"]


def test_the_slow_provider_target_is_judged_at_1000_chargers_with_a_12_s_provider() -> None:
    def size(chargers: int, delay_s: float, during_p99_ms: float) -> SizeResult:
        slow = {"before": {"p99_ms": 10.0}, "during": {"p99_ms": during_p99_ms}}
        ours = TargetRun("ours", chargers, {"slow_provider": slow}, {"captures": {"delay_s": delay_s}}, 0)
        return SizeResult(chargers, 0.0, {"ours": ours})

    assert size(1_000, 12.0, 49.0).meets_slow is True
    assert size(1_000, 12.0, 51.0).meets_slow is False
    assert size(1_000, 12.0, 20.0).slow_ratio == 2.0
    assert size(5_000, 12.0, 20.0).meets_slow is None and size(1_000, 1.0, 20.0).meets_slow is None


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_bench_ocpp_processes_answers_every_call_and_command(
    postgres_url: str, redis_client: object, tmp_path: Path
) -> None:
    # Real `serve` processes on PostgreSQL and the test Redis; the bench makes and drops its databases.
    out = tmp_path / "processes.json"
    args = ["--chargers", "20", "--messages", "100", "--processes", "1,2", "--postgres-url", postgres_url]
    result = runner.invoke(app, ["bench", "ocpp", *args, "--redis-url", REDIS_URL, "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "x 1 proc" in result.output and "cross p99 ms" in result.output
    report = json.loads(out.read_text())
    assert report["benchmark"] == "ocpp-processes" and report["ok"] is True
    assert report["target_scaling"] == 1.6 and report["target_command_p99_ms"] == 100.0
    assert report["params"]["processes"] == [1, 2] and report["params"]["backend"] == "postgres"
    (size,) = report["sizes"]
    runs = {r["processes"]: r for r in size["runs"]}
    assert set(runs) == {1, 2}
    for n, r in runs.items():
        load = r["load"]
        assert r["all_answered"] is True and r["stored_ok"] == 20 and len(r["serve_cpu_s"]) == n
        assert load["connected"] == load["transactions"] == 20
        assert load["setup"]["answered"] == load["setup"]["sent"] == 80
        thr = load["throughput"]
        assert thr["answered"] == thr["sent"] == 100 and thr["call_errors"] == thr["failures"] == 0
        # Charger i on process i % n: the frames split evenly, each process answering its own.
        assert [p["answered"] for p in load["throughput_by_process"]] == [100 // n] * n
        commands = load["commands"]
        routes = ("local", "cross") if n > 1 else ("local",)
        assert set(commands) == {"sampled", "warmup", "answered_by_chargers", *routes}
        for route in routes:  # every charger in the sample, each answered by the charger ("done")
            assert commands[route]["sent"] == commands[route]["done"] == 20
            assert commands[route]["outcomes"] == {"done": 20}
        # Each command reached its charger once: the measured ones and the warm-up (5 per process).
        assert commands["warmup"] == 5 * n
        assert commands["answered_by_chargers"] == 20 * len(routes) + 5 * n
    assert size["meets_command_target"] in (True, False) and size["meets_scaling_target"] in (True, False)
    assert size["scaling"]["1"] == 1.0


def test_bench_ocpp_processes_rejects_bad_arguments() -> None:
    for args in (
        ["--processes", "0"],
        ["--processes", "1,1"],
        ["--processes", "two"],
        ["--processes", "1,2", "--backend", "sqlite"],
        ["--processes", "1,3", "--chargers", "2"],
    ):
        result = runner.invoke(app, ["bench", "ocpp", *args])
        assert result.exit_code == 2, (args, result.output)


def test_the_command_sample_is_spread_over_the_fleet() -> None:
    assert sample_indexes(20, 200) == list(range(20))
    picked = sample_indexes(1000, 200)
    assert len(picked) == 200 and picked[:3] == [0, 5, 10]
    assert sum(i % 2 for i in picked) == 100  # with 2 processes, half the sample on each


class _AnsweringLink:
    """A charger's link whose central system answers every call at once."""

    def __init__(self) -> None:
        self.replies: asyncio.Queue[str] = asyncio.Queue()

    async def send(self, text: str) -> None:
        started = {"transactionId": 1, "idTagInfo": {"status": "Accepted"}}  # a StartTransaction's answer
        self.replies.put_nowait(json.dumps([3, json.loads(text)[1], started]))

    async def recv(self) -> str:
        return await self.replies.get()


async def test_a_paced_reading_sent_late_counts_from_when_it_was_due() -> None:
    # The load generator's own loop is held past the reading's due time (as a long garbage collection
    # in it would): the server answers at once, yet the reading was late, and the figure must say so.
    charger = LightCharger(ChargerPlan("CP1", "TAG1"), ws=_AnsweringLink())  # type: ignore[arg-type]
    charger.transaction_id = 1
    phase = asyncio.create_task(paced([charger], seconds=1.0, interval_s=10.0))
    await asyncio.sleep(0)  # the phase has fixed its schedule: the reading is due 0.5 s from now
    time.sleep(0.8)  # the loop stands still past that
    result = await phase
    assert result.answered == 1
    (latency_ns,) = result.latencies_ns
    assert latency_ns >= 300_000_000


async def test_a_call_sent_on_time_counts_from_its_send() -> None:
    charger = LightCharger(ChargerPlan("CP1", "TAG1"), ws=_AnsweringLink())  # type: ignore[arg-type]
    phase = PhaseResult()
    due_ns = time.perf_counter_ns() + 60 * 10**9  # sent well before it was due
    await charger.call(charger.frame("Heartbeat", "2026-01-01T00:00:00Z"), phase, due_ns)
    (latency_ns,) = phase.latencies_ns
    assert 0 < latency_ns < 60 * 10**9


async def test_the_load_generator_freezes_its_links_out_of_the_collector_before_timing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Thousands of links' objects, rescanned by full collections in the load generator, would stall
    # it and show up as the server's latency.
    async def answering_links(url: str, plans: list[ChargerPlan]) -> tuple[list[LightCharger], list[str]]:
        return [LightCharger(p, _AnsweringLink()) for p in plans], []  # type: ignore[arg-type]

    monkeypatch.setattr(ocpp_load, "connect_all", answering_links)
    threshold, frozen_before = gc.get_threshold(), gc.get_freeze_count()
    plans = [ChargerPlan(f"CP{i}", f"TAG{i}") for i in range(3)]
    try:
        report = await ocpp_load.run_load("ws://unused", plans, LoadParams(6, 10.0, 0.0, 1.0), lambda _: None)
        frozen, tuned = gc.get_freeze_count(), gc.get_threshold()
    finally:
        gc.set_threshold(*threshold)  # what it froze stays frozen: this process keeps it anyway
    assert report["throughput"]["answered"] == 6
    own = report["throughput"]["load_generator"]
    assert own.keys() == {"gc_collections", "gc_pause_max_ms", "gc_pause_total_ms", "loop_lag_max_ms"}
    assert frozen > frozen_before and tuned[0] == YOUNG_THRESHOLD
    assert report["gc_frozen_objects"] > frozen_before


def test_the_throughput_phase_defaults_to_the_same_frames_per_charger_at_every_size() -> None:
    assert frames_for(None, 1_000) == 20_000 and frames_for(None, 5_000) == 100_000
    assert frames_for(300, 5_000) == 300  # as asked
    check_messages((19_900,), None)  # 20 each is far below a booking's energy limit
