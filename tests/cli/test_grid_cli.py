"""`chargeshare grid`: feeders, sites and flexibility events written to the database, shown back,
and decided at the next housekeeping sweep (which tells the chargers)."""

from __future__ import annotations

import json
from pathlib import Path

from chargeshare.bootstrap import Config, build
from chargeshare.cli.app import app
from chargeshare.domain.grid_limits import MIN_CHARGING_W
from tests.cli_runner import CliRunner

runner = CliRunner()


def test_a_feeder_a_site_and_a_flex_event_are_kept_and_decided_at_the_sweep(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cs.db'}"
    db = ["--database-url", url]

    def run(*args: str) -> list[dict[str, object]]:
        result = runner.invoke(app, ["grid", *args, "--json", "-", *db])
        assert result.exit_code == 0, result.output
        rows: list[dict[str, object]] = json.loads(result.stdout)
        return rows

    added = runner.invoke(app, ["chargers", "add", "CP-G", "--lat", "51.45", "--lon", "-2.59", *db])
    assert added.exit_code == 0, added.output
    (feeder,) = run("add-feeder", "F1", "--limit-w", "30000")
    (site,) = run("add-site", "CP-G", "--limit-w", "13800", "--house-load-w", "2000", "--feeder", "1")
    assert (site["feeder_id"], site["chargers"]) == (feeder["feeder_id"], ["CP-G"])
    (event,) = run("flex-event", "--feeder", "1", "--limit-w", "5000", "--minutes", "30")
    assert (event["scope"], event["limit_w"]) == ("feeder", 5_000)
    kinds = [r["kind"] for r in run("show")]
    assert kinds == ["feeder", "site", "flex event"]
    assert run("limits", "CP-G") == []  # nothing decided yet: a running server's sweep does it
    a = build(Config(database_url=url))
    try:
        assert a.housekeeping.sweep().counts["grid_limits_due"] == 1
    finally:
        a.close()
    assert run("limits", "CP-G") == [{"connector": 1, "limit_w": MIN_CHARGING_W}]


def test_a_flex_event_names_one_target_and_a_time_with_its_offset(tmp_path: Path) -> None:
    db = ["--database-url", f"sqlite:///{tmp_path / 'cs.db'}"]
    both = runner.invoke(app, ["grid", "flex-event", "--limit-w", "1", "--minutes", "5", *db])
    assert both.exit_code == 2 and "one of --feeder and --site" in both.output
    naive = ["--feeder", "1", "--starts", "2026-03-02T17:00"]
    bad = runner.invoke(app, ["grid", "flex-event", "--limit-w", "1", "--minutes", "5", *naive, *db])
    assert bad.exit_code == 2 and "UTC offset" in bad.output
    unknown = runner.invoke(
        app, ["grid", "flex-event", "--limit-w", "1", "--minutes", "5", "--feeder", "9", *db]
    )
    assert unknown.exit_code == 2 and "no feeder 9" in unknown.output
