"""`chargeshare bench`: exit codes, report contents, and that the hand-written baselines answer exactly
what the store's search answers (no timing assertions: the figures are a report, not a test)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from chargeshare.adapters.sql import SqlStore
from chargeshare.benchmarks.geo import (
    KINDS,
    BestSearch,
    UkFleet,
    best_ids,
    load_postgres,
    load_sqlite,
    make_queries,
    ours_ids,
    ours_search,
)
from chargeshare.benchmarks.stats import Latency, percentile
from chargeshare.cli.app import app
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff
from tests.cli_runner import CliRunner

runner = CliRunner()
UNREACHABLE_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:1/postgres"


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile(list(range(101)), 99) == 99
    lat = Latency.of_ns([1_000_000, 2_000_000, 3_000_000])
    assert (lat.n, lat.p50_ms) == (3, 2.0)
    with pytest.raises(ValueError):
        percentile([], 50)


@pytest.mark.slow
def test_bench_geo_on_sqlite_reports_both_query_kinds(tmp_path: Path) -> None:
    out = tmp_path / "geo.json"
    result = runner.invoke(
        app,
        ["bench", "geo", "--chargers", "2000", "--queries", "20", "--backend", "sqlite", "--json", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "Map search" in result.output and "Bulk load" in result.output
    assert "bbox" in result.output and "radius" in result.output and "ours/best" in result.output
    report = json.loads(out.read_text())
    assert report["benchmark"] == "geo" and report["target_ratio"] == 1.5
    assert report["params"]["chargers"] == 2000 and report["params"]["backends"] == ["sqlite"]
    (load,) = report["loads"]
    assert load["backend"] == "sqlite" and load["chargers"] == 2000 and load["connectors"] >= 2000
    assert [(r["backend"], r["kind"]) for r in report["results"]] == [
        ("sqlite", "bbox"),
        ("sqlite", "radius"),
    ]
    for r in report["results"]:
        assert r["queries"] == 20 and r["mismatches"] == 0 and r["mean_results"] > 0
        assert r["ours_ms"]["p50"] > 0 and r["best_ms"]["p99"] >= r["best_ms"]["p50"] > 0
        assert r["meets_target"] == (r["ratio_p50"] <= 1.5 and r["ratio_p99"] <= 1.5)


def test_bench_geo_rejects_bad_arguments(tmp_path: Path) -> None:
    assert runner.invoke(app, ["bench", "geo", "--chargers", "0"]).exit_code == 2
    assert runner.invoke(app, ["bench", "geo", "--backend", "mysql"]).exit_code == 2
    assert runner.invoke(app, ["bench", "geo", "--queries", "0"]).exit_code == 2
    missing_dir = runner.invoke(app, ["bench", "geo", "--json", str(tmp_path / "no" / "such" / "g.json")])
    assert missing_dir.exit_code == 2 and "does not exist" in missing_dir.output
    down = runner.invoke(
        app, ["bench", "geo", "--backend", "postgres", "--postgres-url", UNREACHABLE_POSTGRES]
    )
    assert down.exit_code == 3 and "not reachable" in down.output
    down = runner.invoke(app, ["bench", "race", "--backend", "both", "--postgres-url", UNREACHABLE_POSTGRES])
    assert down.exit_code == 3 and "not reachable" in down.output


def test_bench_race_on_sqlite_has_one_winner_and_one_hold(tmp_path: Path) -> None:
    out = tmp_path / "race.json"
    result = runner.invoke(
        app, ["bench", "race", "--attempts", "50", "--backend", "sqlite", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "one winner, one hold" in result.output
    report = json.loads(out.read_text())
    assert report["benchmark"] == "race" and report["ok"] is True
    runs = report["runs"]
    assert [(r["backend"], r["locks"]) for r in runs] == [("sqlite", True), ("sqlite", False)]
    assert runs[0]["lock_store"] == "in-process" and runs[1]["lock_store"] == "none"
    assert all(r["statements_per_attempt"] > 0 for r in runs)
    # With claims in front, the losers never reach the database: fewer statements than without.
    assert runs[0]["statements_per_attempt"] < runs[1]["statements_per_attempt"]
    # Locks on's time over locks off's; Redis (here the in-process fake) sees the winner's lock only.
    assert runs[0]["x_off"] > 0 and runs[1]["x_off"] is None
    assert 0 < runs[0]["redis_commands_per_attempt"] < 1 and runs[1]["redis_commands"] == 0
    assert "redis/try" in result.output and "x off" in result.output
    for r in runs:
        assert (r["attempts"], r["winners"], r["conflicts"], r["errors"]) == (50, 1, 49, 0)
        assert r["holds"] == 1 and r["live_bookings"] == 1 and r["wall_s"] > 0


def _agree(store: SqlStore, per_kind: int) -> None:
    """Ours and best return the same chargers, in the same order, with the same connectors."""
    for kind in KINDS:
        found = 0
        for q in make_queries(kind, per_kind, seed=3):
            ours = ours_ids(ours_search(store, q))
            best = BestSearch(store)
            try:
                assert best_ids(best.search(q)) == ours, q
            finally:
                best.close()
            found += len(ours)
        assert found > 0, f"the {kind} queries found nothing; the check would be empty"


def _store_still_writes(store: SqlStore) -> None:
    """Bulk-loaded rows satisfy the store: it reads them back and can add the next charger."""
    with store.transaction() as tx:
        first = tx.chargers.get("UK00000001")
        assert first.charger_id == 1 and first.connectors and first.connectors[0].connector_no == 1
        new_id = tx.chargers.add(
            ChargerSpec(
                "AFTER-LOAD", 1, Point(51.5, 0.0), Tariff(30), (ConnectorSpec(1, ConnectorType.TYPE2, 7400),)
            )
        )
        assert tx.chargers.by_id(new_id).charge_point_id == "AFTER-LOAD"


@pytest.fixture
def sqlite_fleet(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore(f"sqlite:///{tmp_path / 'fleet.db'}")
    store.create_schema()
    fleet = UkFleet(2000, seed=3)
    loaded: list[int] = []
    load_sqlite(store, fleet, loaded.append)
    assert sum(loaded) == 2000 and fleet.connectors >= 2000
    yield store
    store.close()


def test_best_baseline_answers_like_the_store_on_sqlite(sqlite_fleet: SqlStore) -> None:
    _agree(sqlite_fleet, per_kind=30)
    _store_still_writes(sqlite_fleet)


@pytest.mark.postgres
def test_best_baseline_answers_like_the_store_on_postgres(postgres_url: str) -> None:
    store = SqlStore(postgres_url)
    try:
        store.create_schema()
        load_postgres(store, UkFleet(2000, seed=3), lambda _n: None)
        _agree(store, per_kind=30)
        _store_still_writes(store)
    finally:
        store.close()


@pytest.mark.postgres
def test_bench_geo_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    # The fixture's database serves as the "admin" connection; the bench makes and drops its own.
    out = tmp_path / "geo.json"
    result = runner.invoke(
        app,
        [
            "bench",
            "geo",
            "--chargers",
            "2000",
            "--queries",
            "20",
            "--backend",
            "postgres",
            "--postgres-url",
            postgres_url,
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert [(r["backend"], r["kind"]) for r in report["results"]] == [
        ("postgres", "bbox"),
        ("postgres", "radius"),
    ]
    assert all(r["mismatches"] == 0 and r["mean_results"] > 0 for r in report["results"])
    assert "postgis" in report["machine"]


@pytest.mark.postgres
def test_bench_race_on_postgres_falls_back_to_fakeredis(postgres_url: str, tmp_path: Path) -> None:
    out = tmp_path / "race.json"
    result = runner.invoke(
        app,
        [
            "bench",
            "race",
            "--attempts",
            "20",
            "--backend",
            "postgres",
            "--locks",
            "on",
            "--postgres-url",
            postgres_url,
            "--redis-url",
            "redis://127.0.0.1:1/0",
            "--json",
            str(out),
        ],
    )
    assert "claims in process" in result.output
    (run,) = json.loads(out.read_text())["runs"]
    assert run["lock_store"] == "in-process" and run["attempts"] == 20
    # Exactly one winner and one hold (booking writes queue on the connector row: no deadlock).
    assert (run["winners"], run["holds"], run["errors"]) == (1, 1, 0)
    assert result.exit_code == 0
