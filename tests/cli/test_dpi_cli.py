"""`chargeshare accounts set-seller-details` and `chargeshare dpi report`: hosts' details recorded,
the year reported as CSV, XML, JSON and sellers' copies, and exit 1 while it cannot be filed (a
seller without details, a ledger that does not reconcile)."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from chargeshare.bootstrap import Config, build
from chargeshare.cli.app import app
from chargeshare.domain.ledger import EntryKind, JournalEntry, Posting, host_payable
from chargeshare.services.booking import BookRequest
from chargeshare.services.clock import ManualClock
from tests.conftest import add_charger

runner = CliRunner()
WIDE = {"COLUMNS": "200"}
DPI = "{urn:oecd:ties:dpi:v1}"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[list[str]]:
    """Two hosts, each paid for two sessions in 2026 (one in Q1, one in Q3)."""
    url = f"sqlite:///{tmp_path / 'cs.db'}"
    clock = ManualClock(datetime(2026, 2, 10, 9, tzinfo=UTC))
    backend = build(Config(database_url=url, password_hash="fast"), clock=clock)
    try:
        driver = backend.marketplace.add_driver("Dee", "TAG").driver_id
        for cp in ("CP1", "CP2"):
            charger = add_charger(backend, cp, price=40)
            for register in (10_000, 20_000):
                backend.bookings.book(BookRequest(driver, charger, 1, 60, 20_000))
                clock.advance(60)
                started = backend.charging.start(cp, 1, "TAG", register - 10_000, clock.now())
                clock.advance(1_800)
                backend.charging.stop(cp, started.transaction_id, register, clock.now())
                clock.advance(150 * 86_400)
    finally:
        backend.close()
    yield ["--database-url", url]


@pytest.fixture
def one_host(tmp_path: Path) -> list[str]:
    """A database with one host and nothing else."""
    url = f"sqlite:///{tmp_path / 'one.db'}"
    backend = build(Config(database_url=url, password_hash="fast"))
    try:
        backend.marketplace.add_host("Hannah")
    finally:
        backend.close()
    return ["--database-url", url]


def give_details(db: list[str], host: int, *extra: str) -> Result:
    return runner.invoke(
        app,
        [
            "accounts",
            "set-seller-details",
            str(host),
            "--kind",
            "individual",
            "--first-names",
            "Hannah",
            "--last-name",
            f"Host{host}",
            "--birth-date",
            "1980-02-03",
            "--address-line1",
            "1 Harbourside",
            "--city",
            "Bristol",
            "--postcode",
            "bs15tr",
            "--country",
            "GB",
            "--nino",
            "AB123456C",
            *extra,
            *db,
        ],
    )


@pytest.mark.slow  # about 1.5 s: seven commands, each opening the database
def test_the_year_is_reported_once_every_seller_has_given_details(db: list[str], tmp_path: Path) -> None:
    given = give_details(db, 1, "--iban", "GB82 WEST 1234 5698 7654 32")
    assert given.exit_code == 0, given.output
    files = {"--csv": tmp_path / "r.csv", "--xml": tmp_path / "r.xml", "--json": tmp_path / "r.json"}
    args = ["dpi", "report", "--year", "2026", *(a for kv in files.items() for a in map(str, kv)), *db]
    unfinished = runner.invoke(app, [*args, "--sellers-dir", str(tmp_path / "copies")], env=WIDE)
    assert unfinished.exit_code == 1, unfinished.output
    assert "missing details: 1 reportable sellers have none on file (hosts 2)" in unfinished.output
    assert json.loads(files["--json"].read_text())["missing_details"] == [2]

    assert give_details(db, 2).exit_code == 0
    done = runner.invoke(app, [*args, "--sellers-dir", str(tmp_path / "copies")], env=WIDE)
    assert done.exit_code == 0, done.output
    assert "2026: reconciles with the ledger and the payouts; ready to file" in done.output

    rows = list(csv.DictReader(io.StringIO(files["--csv"].read_text())))
    assert [(r["host_id"], r["status"], r["name"]) for r in rows] == [
        ("1", "reportable", "Hannah Host1"),
        ("2", "reportable", "Hannah Host2"),
    ]
    # 10 kWh at 40p = 400p a session; 15% fee (60p) withheld, 340p credited: Q1 and Q3.
    first = rows[0]
    assert [first[f"consideration_q{q}_pence"] for q in (1, 2, 3, 4)] == ["340", "0", "340", "0"]
    assert (first["fees_pence"], first["activities"], first["bank_account"]) == (
        "120",
        "2",
        "GB82WEST12345698765432",
    )

    root = ET.parse(files["--xml"]).getroot()
    assert root.tag == f"{DPI}DPI_OECD"
    assert root.findtext(f"{DPI}MessageSpec/{DPI}ReportingPeriod") == "2026-12-31"
    sellers = root.findall(f"{DPI}DPIBody/{DPI}ReportableSeller")
    assert len(sellers) == 2
    listing = sellers[0].find(f"{DPI}RelevantActivities/{DPI}ImmovableProperty/{DPI}PropertyListing")
    assert listing is not None
    assert [listing.findtext(f"{DPI}Consideration/{DPI}ConsQ{q}") for q in (1, 2, 3, 4)] == [
        "3",
        "0",
        "3",
        "0",
    ]
    assert listing.findtext(f"{DPI}PropertyType") == "DPI909"
    tin = sellers[0].find(f".//{DPI}IndSellerID/{DPI}TIN")
    assert tin is not None and (tin.text, tin.get("issuedBy")) == ("AB123456C", "GB")

    copies = sorted(p.name for p in (tmp_path / "copies").iterdir())
    assert copies == ["dpi-2026-seller-1.txt", "dpi-2026-seller-2.txt"]
    copy = (tmp_path / "copies" / copies[0]).read_text()
    assert "Hannah Host1" in copy and "Q3" in copy and "£3.40" in copy

    quiet = runner.invoke(app, ["dpi", "report", "--year", "2026", "-q", *db], env=WIDE)
    assert (
        quiet.exit_code == 0
        and quiet.stdout.strip() == "2026: reconciles with the ledger and the payouts; ready to file"
    )


def test_a_ledger_that_does_not_reconcile_fails_the_report(db: list[str]) -> None:
    url = db[1]
    backend = build(Config(database_url=url, password_hash="fast"))
    try:
        stray = JournalEntry(
            "stray",
            EntryKind.PROCESSOR_FEE,  # a credit to host 1 outside settlement
            (Posting("platform:processor_fees", 250), Posting(host_payable(1), -250)),
            datetime(2026, 5, 1, 12, tzinfo=UTC),
            None,
        )
        with backend.store.transaction() as tx:
            tx.ledger.add([stray])
    finally:
        backend.close()
    result = runner.invoke(app, ["dpi", "report", "--year", "2026", "--json", "-", *db], env=WIDE)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert {(d["host_id"], d["check"], d["quarter"]) for d in report["discrepancies"]} == {
        (1, "consideration", 2),
        (1, "fees", 2),
        (1, "payouts", None),
    }
    assert "discrepancy: host 1, consideration in Q2" in result.stderr


@pytest.mark.slow  # about 1 s: five commands, each opening the database
def test_mistakes_are_usage_errors_naming_what_is_wrong(one_host: list[str]) -> None:
    db = one_host
    bad_nino = give_details(db, 1)
    assert bad_nino.exit_code == 0
    person = ["--kind", "individual", "--first-names", "A", "--last-name", "B", "--birth-date", "1980-02-03"]
    home = ["--address-line1", "x", "--city", "Bristol", "--postcode", "BS1 5TR", "--country", "GB"]
    refused = runner.invoke(
        app, ["accounts", "set-seller-details", "1", *person, *home, "--nino", "QQ123456C", *db]
    )
    assert refused.exit_code == 2 and "tax_id: QQ is not a National Insurance prefix" in refused.output
    two_ids = give_details(db, 1, "--utr", "1234567890")
    assert two_ids.exit_code == 2 and "give one tax identifier" in two_ids.output
    shown = runner.invoke(app, ["accounts", "seller-details", "1", "--json", "-", *db])
    assert json.loads(shown.stdout)["details"]["tax_id"] == "AB123456C"  # the refusals changed nothing
    too_early = runner.invoke(app, ["dpi", "report", "--year", "1999", *db])
    assert too_early.exit_code == 2 and "--year" in too_early.output
