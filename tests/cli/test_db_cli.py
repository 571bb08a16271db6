from __future__ import annotations

import json
from pathlib import Path

from chargeshare.adapters.sql import migrate
from chargeshare.cli.app import app
from tests.cli_runner import CliRunner

runner = CliRunner()


def test_version_then_upgrade_then_current(tmp_path: Path) -> None:
    db = ["--database-url", f"sqlite:///{tmp_path / 'cs.db'}"]
    behind = runner.invoke(app, ["db", "version", *db])
    assert behind.exit_code == 1 and f"database: no version; this code: {migrate.HEAD}" in behind.output
    created = runner.invoke(app, ["db", "upgrade", *db])
    assert created.exit_code == 0 and "created" in created.output, created.output
    again = runner.invoke(app, ["db", "upgrade", *db])
    assert again.exit_code == 0 and "current" in again.output
    at = runner.invoke(app, ["db", "version", *db])
    assert at.exit_code == 0 and f"database: {migrate.HEAD}" in at.output
    as_json = runner.invoke(app, ["db", "version", "--json", "-", *db])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == {"database": migrate.HEAD, "code": migrate.HEAD, "current": True}


def test_version_as_json_says_when_the_database_is_behind(tmp_path: Path) -> None:
    db = ["--database-url", f"sqlite:///{tmp_path / 'cs.db'}"]
    behind = runner.invoke(app, ["db", "version", "--json", "-", *db])
    assert behind.exit_code == 1
    assert json.loads(behind.stdout) == {"database": None, "code": migrate.HEAD, "current": False}


def test_an_unreachable_database_is_one_line_and_exit_3(tmp_path: Path) -> None:
    bad = runner.invoke(app, ["db", "upgrade", "--database-url", f"sqlite:///{tmp_path / 'no' / 'dir.db'}"])
    assert bad.exit_code == 3 and "cannot upgrade the database" in bad.output
    assert len(bad.output.strip().splitlines()) == 1, bad.output
