"""`chargeshare dpi`: HMRC digital platform reporting, straight from the backend's database.

`dpi report --year Y` builds the year's report of what hosts earned, checks it against the ledger
and the payouts, and writes it as CSV, as XML in the OECD DPI schema's shape, as JSON, and as each
reportable seller's copy. It exits 1 when the report is not fit to file: a discrepancy with the
books, or a reportable seller whose details are not on file.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from chargeshare.cli.errors import FAILED
from chargeshare.cli.open_backend import DatabaseUrl, open_app
from chargeshare.cli.options import chatter, human_output, json_option, output_option, quiet, write_output
from chargeshare.domain.money import format_gbp
from chargeshare.domain.platform_reporting import PlatformOperator
from chargeshare.domain.statement import FIRST_YEAR, LAST_YEAR

if TYPE_CHECKING:
    from chargeshare.services.platform_reporting import CheckedReport

app = typer.Typer(
    help="HMRC digital platform reporting: the yearly report of hosts' earnings.", no_args_is_help=True
)
console = Console(soft_wrap=True)

OPERATOR = PlatformOperator()


@app.command("report")
def report(
    year: Annotated[
        int,
        typer.Option("--year", min=FIRST_YEAR, max=LAST_YEAR, help="The reportable period: a calendar year."),
    ],
    csv_out: Annotated[
        Path | None, output_option("Write a row per active seller as CSV here.", "--csv")
    ] = None,
    xml_out: Annotated[
        Path | None, output_option("Write the report as XML in the OECD DPI schema's shape here.", "--xml")
    ] = None,
    json_out: Annotated[Path | None, json_option("the report and its check")] = None,
    sellers_dir: Annotated[
        Path | None,
        typer.Option(
            "--sellers-dir", metavar="DIR", help="Write each reportable seller's copy here (made if missing)."
        ),
    ] = None,
    operator_name: Annotated[str, typer.Option(help="The platform operator's name.")] = OPERATOR.name,
    operator_tin: Annotated[
        str | None, typer.Option(help="The operator's UK tax reference; unset: the XML says none is known.")
    ] = None,
    operator_address: Annotated[
        str, typer.Option(help="The operator's registered office, on one line.")
    ] = OPERATOR.address,
    database_url: DatabaseUrl = None,
) -> None:
    """Report a year's sellers to HMRC: who is reportable, with their quarterly consideration, fees
    and activities; checked against the ledger and the payouts (exit 1 if it does not reconcile, or
    a reportable seller's details are missing)."""
    operator = PlatformOperator(operator_name, operator_tin, operator_address)
    with open_app(database_url) as a:
        checked = a.platform_reporting.report(year)
        now = a.clock.now()
    with human_output(console, csv_out, xml_out, json_out) as out:
        _write_files(checked, operator, now, csv_out, xml_out, json_out, sellers_dir, out)
        if not quiet():
            _print_sellers(checked, out)
        _print_verdict(checked, out)
    if not checked.ok:
        raise typer.Exit(FAILED)


def _write_files(
    checked: CheckedReport,
    operator: PlatformOperator,
    now: datetime,
    csv_out: Path | None,
    xml_out: Path | None,
    json_out: Path | None,
    sellers_dir: Path | None,
    out: Console,
) -> None:
    from chargeshare.adapters.dpi_files import report_csv, report_json, seller_copy, seller_copy_name
    from chargeshare.adapters.dpi_xml import report_xml

    report = checked.report
    said = chatter(out)
    if csv_out is not None:
        write_output(csv_out, report_csv(report))
        said.print(f"CSV written to {csv_out}")
    if xml_out is not None:
        write_output(xml_out, report_xml(report, operator, now))
        said.print(f"XML written to {xml_out}")
    if json_out is not None:
        write_output(
            json_out, json.dumps(report_json(report, checked.discrepancies), indent=2, sort_keys=True)
        )
        said.print(f"JSON written to {json_out}")
    if sellers_dir is not None:
        sellers_dir.mkdir(parents=True, exist_ok=True)
        copies = [s for s in report.reportable if s.details is not None]
        for seller in copies:
            (sellers_dir / seller_copy_name(report, seller)).write_text(
                seller_copy(report, seller, operator), encoding="utf-8"
            )
        said.print(f"{len(copies)} sellers' copies written to {sellers_dir}")


def _print_sellers(checked: CheckedReport, out: Console) -> None:
    from chargeshare.adapters.dpi_files import status_of

    report = checked.report
    table = Table(
        "host",
        "name",
        "status",
        "consideration",
        "fees",
        "activities",
        title=f"Sellers active in {report.year}",
    )
    for s in report.sellers:
        name = s.details.name if s.details is not None else s.host_name
        table.add_row(
            str(s.host_id),
            name,
            status_of(s),
            format_gbp(s.consideration),
            format_gbp(s.fees),
            str(s.activities),
        )
    out.print(table)
    out.print(
        f"{len(report.reportable)} of {len(report.sellers)} active sellers reportable "
        f"(hosts' activity read as {report.rules.activity.value})"
    )


def _print_verdict(checked: CheckedReport, out: Console) -> None:
    for d in checked.discrepancies:
        out.print(f"[red]discrepancy:[/] {d}")
    missing = checked.report.missing_details
    if missing:
        hosts = ", ".join(str(s.host_id) for s in missing)
        out.print(
            f"[red]missing details:[/] {len(missing)} reportable sellers have none on file (hosts {hosts}); "
            "the XML leaves them out"
        )
    year = checked.report.year
    if checked.ok:
        out.print(f"{year}: reconciles with the ledger and the payouts; ready to file")
    else:
        out.print(
            f"{year}: not ready to file: {len(checked.discrepancies)} discrepancies, "
            f"{len(missing)} sellers without details"
        )
