"""`chargeshare tokens`: tokens added, blocked and listed; a charger's walk-in set and shown."""

from __future__ import annotations

import json
from pathlib import Path

from chargeshare.bootstrap import Config, build
from chargeshare.cli import errors
from chargeshare.cli.app import app
from tests.cli_runner import CliRunner
from tests.conftest import add_charger

runner = CliRunner()


def test_add_block_list_and_walk_in(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cs.db'}"
    backend = build(Config(database_url=url, password_hash="fast"))
    try:
        driver = backend.marketplace.add_driver("Dev", "DEV-TAG").driver_id
        add_charger(backend, "CP1", online=False)
    finally:
        backend.close()
    db = ["--database-url", url]
    card = ["04A1B2C3", "--type", "ISO15693", "--group", "FLEET-1", "--expires", "2030-01-31T00:00:00Z"]
    added = runner.invoke(app, ["tokens", "add", str(driver), *card, *db])
    assert added.exit_code == 0, added.output
    assert "'04A1B2C3' for driver" in added.output and "Accepted" in added.output
    master = runner.invoke(app, ["tokens", "add", str(driver), "MASTER", "--master-pass", *db])
    assert master.exit_code == 0, master.output
    blocked = runner.invoke(app, ["tokens", "block", "DEV-TAG", *db])  # the booking tag, as a token
    assert blocked.exit_code == 0 and "Blocked" in blocked.output
    listed = runner.invoke(app, ["tokens", "list", *db], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "3 tokens" in listed.output
    as_json = runner.invoke(app, ["tokens", "list", "--driver", str(driver), "--json", "-", *db])
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.stdout)
    assert [(r["value"], r["type"], r["status"], r["master_pass"]) for r in rows] == [
        ("04A1B2C3", "ISO15693", "Accepted", False),
        ("MASTER", "ISO14443", "Accepted", True),
        ("DEV-TAG", "Central", "Blocked", False),
    ]
    assert (rows[0]["group_id"], rows[0]["expires_at"]) == ("FLEET-1", "2030-01-31T00:00:00+00:00")
    out = tmp_path / "tokens.json"
    assert runner.invoke(app, ["tokens", "list", "--json", str(out), *db]).exit_code == 0
    assert len(json.loads(out.read_text())) == 3

    on = runner.invoke(app, ["tokens", "walk-in", "CP1", "--price", "45", *db])
    assert on.exit_code == 0 and "CP1: walk-in at 45p/kWh" in on.output
    shown = runner.invoke(app, ["tokens", "walk-in", "CP1", *db])
    assert "walk-in at 45p/kWh" in shown.output
    off = runner.invoke(app, ["tokens", "walk-in", "CP1", "--off", *db])
    assert off.exit_code == 0 and "CP1: bookings only" in off.output


def test_bad_tokens_are_refused_with_a_reason(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cs.db'}"
    backend = build(Config(database_url=url, password_hash="fast"))
    try:
        driver = backend.marketplace.add_driver("Dev", "DEV-TAG").driver_id
    finally:
        backend.close()
    db = ["--database-url", url]
    naive = runner.invoke(app, ["tokens", "add", str(driver), "CARD", "--expires", "2030-01-31T00:00", *db])
    assert naive.exit_code == errors.USAGE and "time zone" in naive.output
    # Longer than any OCPP version lets a charger present (2.1: 255): one line, not a database error.
    long = runner.invoke(app, ["tokens", "add", str(driver), "X" * 256, *db])
    assert long.exit_code == errors.USAGE and "1 to 255 printable characters" in long.output, long.output
    assert long.output.count("\n") == 1
    group = runner.invoke(app, ["tokens", "add", str(driver), "CARD", "--group", "G" * 21, *db])
    assert group.exit_code == errors.USAGE and "group id is 1 to 20" in group.output
    unknown = runner.invoke(app, ["tokens", "block", "NOBODY", *db])
    assert unknown.exit_code != 0 and "no token 'NOBODY'" in unknown.output
    with_both = runner.invoke(app, ["tokens", "walk-in", "CP1", "--price", "4", "--off", *db])
    assert with_both.exit_code == errors.USAGE
