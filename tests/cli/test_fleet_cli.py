"""`chargeshare fleet`: a fleet made, a block booked (and refused whole when it clashes), its
occurrences listed, a month invoiced and paid against, the statement shown."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import typer

from chargeshare.bootstrap import Config, build
from chargeshare.cli import errors
from chargeshare.cli.app import app
from chargeshare.cli.fleet import parse_weekdays
from tests.cli_runner import CliRunner
from tests.conftest import add_charger

runner = CliRunner()


def test_weekdays_are_read_as_names_numbers_and_ranges() -> None:
    assert parse_weekdays("mon-fri") == frozenset(range(5))
    assert parse_weekdays("sat,sun") == parse_weekdays("5-6") == frozenset({5, 6})
    with pytest.raises(typer.BadParameter):
        parse_weekdays("fri-mon")
    with pytest.raises(typer.BadParameter):
        parse_weekdays("7")


def test_create_book_list_invoice_pay_and_statement(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cs.db'}"
    backend = build(Config(database_url=url, password_hash="fast"))
    try:
        add_charger(backend, "CP1", online=False)
        add_charger(backend, "CP2", online=False)
    finally:
        backend.close()
    db = ["--database-url", url]
    made = runner.invoke(app, ["fleet", "create", "Vans Ltd", "VANS", *db])
    assert made.exit_code == 0, made.output
    assert "fleet 1 'Vans Ltd'" in made.output
    monday = date.today() + timedelta(days=7 - date.today().weekday() + 7)
    week = ["--from", monday.isoformat(), "--to", (monday + timedelta(days=4)).isoformat()]
    booked = runner.invoke(app, ["fleet", "book", "1", "--on", "CP1", "--on", "CP2:1", *week, *db])
    assert booked.exit_code == 0, booked.output
    assert "contract 1: 10 occurrences booked on 2 connector(s)" in booked.output
    clash = runner.invoke(app, ["fleet", "book", "1", "--on", "CP2", "--days", "wed", *week, *db])
    assert clash.exit_code == errors.USAGE, clash.output  # a refused request, as `open_app` says
    assert "booked" in clash.output and "nothing was booked" in clash.output
    listed = runner.invoke(app, ["fleet", "occurrences", "1", "--json", "-", *db])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert len(rows) == 10 and {r["status"] for r in rows} == {"confirmed"}
    assert datetime.fromisoformat(rows[0]["starts_at"]).astimezone(UTC).date() == monday
    last_month = (date.today().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    invoiced = runner.invoke(app, ["fleet", "invoice", "1", last_month, *db])
    assert invoiced.exit_code == 0, invoiced.output
    assert f"invoice 1 for {last_month}: £0.00" in invoiced.output
    overpaid = runner.invoke(app, ["fleet", "pay", "1", last_month, "100", *db])
    assert overpaid.exit_code == errors.USAGE and "outstanding" in overpaid.output
    shown = runner.invoke(app, ["fleet", "statement", "1", *db], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "receivable £0.00, unbilled £0.00" in shown.output
    bad = runner.invoke(app, ["fleet", "book", "1", "--on", "CP1", "--days", "mon-xyz", *week, *db])
    assert bad.exit_code == errors.USAGE and "mon..sun" in bad.output
