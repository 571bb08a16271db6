"""`chargeshare chargers owed`: exports and overrides owed to chargers, with their refusals, as a
table or as JSON, read from the database."""

from __future__ import annotations

import json
from pathlib import Path

from chargeshare.bootstrap import Config, build
from chargeshare.cli.app import app as cli
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from tests.cli_runner import CliRunner
from tests.conftest import T0, add_charger

runner = CliRunner()
WIDE = {"COLUMNS": "250"}


def test_the_commands_owed_are_listed_with_their_refusals(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cs.db'}"
    db = ["--database-url", url]
    clock = ManualClock(T0)
    app = build(Config(database_url=url, password_hash="fast"), clock=clock)
    try:
        charger = add_charger(app, "CP1")
        dee = app.marketplace.add_driver("Dee", "DEE").driver_id
        app.bookings.book(BookRequest(dee, charger, 1, 60, 10_000, override_smart_charging=True))
        session = app.charging.start("CP1", 1, "DEE", 0, clock.now()).transaction_id
    finally:
        app.close()
    table = runner.invoke(cli, ["chargers", "owed", *db], env=WIDE)
    assert table.exit_code == 0, table.output
    row = next(x for x in table.output.splitlines() if "CP1" in x)
    assert [c.strip() for c in row.split("│")[1:-1]] == ["CP1", "override", str(session), "owed", "0", "-"]
    app = build(Config(database_url=url, password_hash="fast"), clock=clock)
    try:
        for _ in range(app.config.rules.command_refusal_limit):
            app.smart.override_refused(session)
    finally:
        app.close()
    as_json = runner.invoke(cli, ["chargers", "owed", "--json", "-", *db])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == [
        {
            "charge_point_id": "CP1",
            "kind": "override",
            "session_id": session,
            "state": "refused",
            "refusals": 8,
            "retry_at": None,
        }
    ]


def test_nothing_owed_says_so(tmp_path: Path) -> None:
    empty = runner.invoke(cli, ["chargers", "owed", "--database-url", f"sqlite:///{tmp_path / 'e.db'}"])
    assert empty.exit_code == 0 and "no commands owed" in empty.output, empty.output
