"""`chargeshare accounts`: an admin made, the accounts listed with the host ids `kyc` takes."""

from __future__ import annotations

import json
from pathlib import Path

from chargeshare.bootstrap import Config, build
from chargeshare.cli.app import app
from tests.cli_runner import CliRunner

runner = CliRunner()


def test_list_shows_the_host_ids_kyc_takes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cs.db'}"
    backend = build(Config(database_url=url, password_hash="fast"))
    try:
        host = backend.auth.register_host("hannah@hosts.example", "a long password 1", "Hannah").host
        backend.auth.register_driver("dev@drivers.example", "a long password 2", "Dev", "TAG-1")
    finally:
        backend.close()
    db = ["--database-url", url]
    wide = {"COLUMNS": "200"}
    made = runner.invoke(
        app, ["accounts", "add-admin", "ops@ops.example", "--password", "an operator pw", *db]
    )
    assert made.exit_code == 0, made.output
    assert runner.invoke(app, ["accounts", "kyc", str(host), "verified", *db]).exit_code == 0
    listed = runner.invoke(app, ["accounts", "list", *db], env=wide)
    assert listed.exit_code == 0, listed.output
    rows = [line for line in listed.output.splitlines() if "@" in line]
    assert len(rows) == 3 and "3 accounts" in listed.output
    (hannah,) = [r for r in rows if "hannah@" in r]
    assert "host" in hannah and f" {host} " in hannah and "Hannah" in hannah and "verified" in hannah
    as_json = runner.invoke(app, ["accounts", "list", "--role", "host", "--json", "-", *db])
    assert as_json.exit_code == 0, as_json.output
    (row,) = json.loads(as_json.stdout)
    assert (row["email"], row["host_id"], row["host_name"], row["kyc_status"]) == (
        "hannah@hosts.example",
        host,
        "Hannah",
        "verified",
    )
    hosts_only = runner.invoke(app, ["accounts", "list", "--role", "host", *db], env=wide)
    assert hosts_only.exit_code == 0 and "1 accounts" in hosts_only.output
    assert "dev@" not in hosts_only.output and "ops@" not in hosts_only.output
    bad = runner.invoke(app, ["accounts", "list", "--role", "owner", *db])
    assert bad.exit_code == 2 and "choose driver, host or admin" in bad.output


def test_pricing_shows_sets_and_refuses_half_given_bounds(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cs.db'}"
    backend = build(Config(database_url=url, password_hash="fast"))
    try:
        host = backend.marketplace.add_host("Hannah")
    finally:
        backend.close()
    db = ["--database-url", url]
    shown = runner.invoke(app, ["accounts", "pricing", str(host), *db])
    assert shown.exit_code == 0 and "flat" in shown.output and "nothing set" in shown.output
    half = runner.invoke(app, ["accounts", "pricing", str(host), "--mode", "dynamic", "--floor", "20", *db])
    assert half.exit_code == 2 and "--ceiling, --own-day, --own-night" in half.output
    bounds = ["--floor", "20", "--ceiling", "60", "--own-day", "25", "--own-night", "7"]
    made = runner.invoke(app, ["accounts", "pricing", str(host), "--mode", "dynamic", *bounds, *db])
    assert made.exit_code == 0, made.output
    assert "dynamic, 20p to 60p per kWh" in made.output
    back = runner.invoke(app, ["accounts", "pricing", str(host), "--mode", "flat", "--json", "-", *db])
    assert back.exit_code == 0, back.output
    assert json.loads(back.stdout) == {
        "host_id": host,
        "mode": "flat",
        "configured": True,
        "floor_per_kwh": 20,
        "ceiling_per_kwh": 60,
        "own_day_per_kwh": 25,
        "own_night_per_kwh": 7,
    }
    wrong = runner.invoke(
        app,
        [
            "accounts",
            "pricing",
            str(host),
            "--mode",
            "dynamic",
            "--floor",
            "90",
            "--ceiling",
            "60",
            "--own-day",
            "25",
            "--own-night",
            "7",
            *db,
        ],
    )
    assert wrong.exit_code != 0 and "floor" in wrong.output


def test_export_buyer_shows_and_sets_a_hosts_choice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cs.db'}"
    backend = build(Config(database_url=url, password_hash="fast"))
    try:
        host = backend.auth.register_host("hannah@hosts.example", "a long password 1", "Hannah").host
    finally:
        backend.close()
    db = ["--database-url", url]
    shown = runner.invoke(app, ["accounts", "export-buyer", str(host), *db])
    assert shown.exit_code == 0 and "bought by the grid buyer" in shown.output, shown.output
    made = runner.invoke(app, ["accounts", "export-buyer", str(host), "home", *db])
    assert made.exit_code == 0 and "bought by the host's home" in made.output, made.output
    assert "the host's home" in runner.invoke(app, ["accounts", "export-buyer", str(host), *db]).output
    unknown = runner.invoke(app, ["accounts", "export-buyer", "999", "home", *db])
    assert unknown.exit_code != 0 and "no host 999" in unknown.output, unknown.output
    bad = runner.invoke(app, ["accounts", "export-buyer", str(host), "neighbour", *db])
    assert bad.exit_code == 2
