"""`chargeshare chargers late-stops`: the operator's page of sessions whose stop came after the
sweep closed them, as a table or as JSON, read from the database."""

from __future__ import annotations

import json
from pathlib import Path

from chargeshare.bootstrap import Config, build
from chargeshare.cli.app import app as cli
from chargeshare.services.clock import ManualClock
from tests.cli_runner import CliRunner
from tests.conftest import T0
from tests.services.test_late_stop_views import two_late_stops

runner = CliRunner()
WIDE = {"COLUMNS": "250"}


def test_the_late_stops_are_listed_for_the_operator(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cs.db'}"
    db = ["--database-url", url]
    empty = runner.invoke(cli, ["chargers", "late-stops", *db], env=WIDE)
    assert empty.exit_code == 0 and "no late stops" in empty.output, empty.output
    clock = ManualClock(T0)
    app = build(Config(database_url=url, password_hash="fast"), clock=clock)
    try:
        rebilled, kept = two_late_stops(app, clock)
    finally:
        app.close()
    table = runner.invoke(cli, ["chargers", "late-stops", *db], env=WIDE)
    assert table.exit_code == 0, table.output
    row = next(x for x in table.output.splitlines() if "V2G1" in x)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells[:12] == [
        str(kept),
        cells[1],
        "V2G1",
        "unbilled",
        "2000",
        "300",
        "700",
        "28",
        "55000",
        "3000",
        "75",
        "-",
    ]
    assert "one row per session" in table.output
    as_json = runner.invoke(cli, ["chargers", "late-stops", "--limit", "1", "--json", "-", *db])
    assert as_json.exit_code == 0, as_json.output
    (only,) = json.loads(as_json.stdout)
    assert (only["session_id"], only["outcome"], only["billed_wh"]) == (rebilled, "rebilled", 1_000)
    assert (only["cost"], only["unbilled_p"], only["rebilled_at"]) == (40, 0, only["at"])
    after = runner.invoke(cli, ["chargers", "late-stops", "--after", str(rebilled), "--json", "-", *db])
    assert [x["session_id"] for x in json.loads(after.stdout)] == [kept]
    bad = runner.invoke(cli, ["chargers", "late-stops", "--limit", "0", *db])
    assert bad.exit_code == 2
