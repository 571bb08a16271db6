"""`chargeshare grid-buyer`: last month's statement of V2G export credits, its payment refused for
the wrong amount, recorded, recorded again without a second entry, and the settlements listed."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from chargeshare.bootstrap import Config, build
from chargeshare.cli import errors
from chargeshare.cli.app import app
from chargeshare.domain.ledger import EntryKind
from chargeshare.services.clock import ManualClock
from tests.cli_runner import CliRunner
from tests.services.test_export_payouts import exported

runner = CliRunner()


def test_statement_pay_twice_and_settlements(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cs.db'}"
    last_month = date.today().replace(day=1) - timedelta(days=20)
    clock = ManualClock(datetime(last_month.year, last_month.month, 10, 9, tzinfo=UTC))
    backend = build(Config(database_url=url, password_hash="fast"), clock=clock)
    try:
        exported(backend, clock)  # 3,333 Wh at 25p per kWh: 83p
    finally:
        backend.close()
    month = last_month.strftime("%Y-%m")
    db = ["--database-url", url]
    shown = runner.invoke(app, ["grid-buyer", "statement", month, *db], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert f"grid buyer for {month}: 1 export(s), £0.83; unpaid" in shown.output
    assert "owed £0.00 at the start + £0.83 credited - £0.00 received = £0.83 at the end" in shown.output
    listed = runner.invoke(app, ["grid-buyer", "statement", month, "--json", "-", *db])
    assert listed.exit_code == 0, listed.output
    statement = json.loads(listed.stdout)
    assert (statement["total"], statement["over"], statement["settlement"]) == (83, True, None)
    assert (statement["opening"], statement["closing"], statement["reconciles"]) == (0, 83, True)
    assert [(x["exported_wh"], x["price_per_kwh"], x["amount"]) for x in statement["lines"]] == [
        (3_333, 25, 83)
    ]
    wrong = runner.invoke(app, ["grid-buyer", "pay", month, "80", *db])
    assert wrong.exit_code == errors.USAGE
    assert f"the statement for {month} is 83p; a payment of 80p does not settle it" in wrong.output
    paid = runner.invoke(app, ["grid-buyer", "pay", month, "83", *db])
    assert paid.exit_code == 0, paid.output
    assert (
        f"grid buyer for {month}: paid £0.83 for 1 export(s)" in paid.output and "(recorded)" in paid.output
    )
    again = runner.invoke(app, ["grid-buyer", "pay", month, "83", "--json", "-", *db])
    assert again.exit_code == 0, again.output
    answer = json.loads(again.stdout)
    assert answer["recorded_now"] is False and answer["settlement"]["entry_id"] == f"grid-settlement:{month}"
    rows = json.loads(runner.invoke(app, ["grid-buyer", "settlements", "--json", "-", *db]).stdout)
    assert [(r["month"], r["amount"], r["exports"], r["recorded_by"]) for r in rows] == [(month, 83, 1, None)]
    this_month = date.today().strftime("%Y-%m")
    early = runner.invoke(app, ["grid-buyer", "pay", this_month, "83", *db])
    assert early.exit_code == errors.USAGE and "is not over yet" in early.output
    bad = runner.invoke(app, ["grid-buyer", "statement", "2026-13", *db])
    assert bad.exit_code == errors.USAGE and "YYYY-MM" in bad.output
    check = build(Config(database_url=url, password_hash="fast"))
    try:
        with check.store.reading() as tx:
            assert len([e for e in tx.ledger.entries() if e.kind is EntryKind.GRID_SETTLEMENT]) == 1
    finally:
        check.close()
