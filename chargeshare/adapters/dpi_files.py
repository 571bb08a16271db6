"""A platform report for people and other programs: a CSV row per active seller, a JSON document
with the check's outcome, and each reportable seller's copy of what was reported about them (the
rules oblige the platform to give every reported seller the information it sent about them).

Money is integer pence here; the XML's whole pounds are beside them in the sellers' copies.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from chargeshare.domain.money import format_gbp
from chargeshare.domain.platform_reporting import (
    PlatformOperator,
    PlatformReport,
    RelevantActivity,
    SellerReport,
    whole_pounds,
)
from chargeshare.domain.report_reconciliation import Discrepancy
from chargeshare.domain.statement import QUARTERS

IDENTITY_COLUMNS = (
    "host_id",
    "status",
    "name",
    "kind",
    "birth_date",
    "address",
    "country",
    "tax_id_kind",
    "tax_id",
    "tax_id_country",
    "company_number",
    "bank_account",
)
FIGURE_COLUMNS = (
    *(f"consideration_q{q}_pence" for q in QUARTERS),
    *(f"fees_q{q}_pence" for q in QUARTERS),
    *(f"activities_q{q}" for q in QUARTERS),
    "consideration_pence",
    "fees_pence",
    "activities",
    "excluded_because",
)
CSV_COLUMNS = IDENTITY_COLUMNS + FIGURE_COLUMNS


def status_of(seller: SellerReport) -> str:
    if not seller.reportable:
        return "excluded"
    return "reportable" if seller.details is not None else "missing details"


def seller_row(seller: SellerReport) -> dict[str, Any]:
    d, quarters = seller.details, seller.figures.quarters
    row: dict[str, Any] = {"host_id": seller.host_id, "status": status_of(seller)}
    row |= {
        "name": d.name if d else seller.host_name,
        "kind": d.kind.value if d else "",
        "birth_date": d.birth_date.isoformat() if d and d.birth_date else "",
        "address": d.address.one_line() if d else "",
        "country": d.address.country if d else "",
        "tax_id_kind": d.tax_id.kind.value if d else "",
        "tax_id": d.tax_id.value if d else "",
        "tax_id_country": d.tax_id.country if d else "",
        "company_number": d.company_number if d else "",
        "bank_account": d.bank.identifier if d and d.bank else "",
    }
    row |= {f"consideration_q{q.quarter}_pence": q.net_paid for q in quarters}
    row |= {f"fees_q{q.quarter}_pence": q.fees_withheld for q in quarters}
    row |= {f"activities_q{q.quarter}": q.activities for q in quarters}
    row |= {
        "consideration_pence": seller.consideration,
        "fees_pence": seller.fees,
        "activities": seller.activities,
        "excluded_because": seller.excluded_because or "",
    }
    return row


def report_csv(report: PlatformReport) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for seller in report.sellers:
        writer.writerow(seller_row(seller))
    return out.getvalue()


def report_json(report: PlatformReport, discrepancies: Sequence[Discrepancy]) -> dict[str, Any]:
    return {
        "year": report.year,
        "activity": report.rules.activity.value,
        "de_minimis": {
            "activities": report.rules.de_minimis_activities,
            "consideration_pence": report.rules.de_minimis_consideration,
        },
        "ok": not discrepancies and not report.missing_details,
        "reportable_sellers": len(report.reportable),
        "missing_details": [s.host_id for s in report.missing_details],
        "discrepancies": [
            {
                "host_id": x.host_id,
                "check": x.check,
                "quarter": x.quarter,
                "reported_pence": x.reported,
                "ledger_pence": x.ledger,
                "detail": x.detail,
            }
            for x in discrepancies
        ],
        "sellers": [seller_row(s) for s in report.sellers],
    }


def seller_copy(report: PlatformReport, seller: SellerReport, operator: PlatformOperator) -> str:
    """What was reported to HMRC about one seller, for them to keep."""
    d = seller.details
    assert d is not None
    lines = [
        f"{operator.name}: what we reported to HMRC about you for {report.year}",
        "",
        "Under the Platform Operators (Due Diligence and Reporting Requirements) Regulations 2023 we",
        "report what sellers earn through our platform to HM Revenue & Customs, and give each seller",
        "a copy. This is yours. Tell us if anything in it is wrong.",
        "",
        f"Name:             {d.name}",
    ]
    if d.birth_date is not None:
        lines.append(f"Date of birth:    {d.birth_date.isoformat()}")
    lines += [
        f"Address:          {d.address.one_line()}",
        f"Tax identifier:   {d.tax_id.kind.value.upper()} {d.tax_id.value} ({d.tax_id.country})",
    ]
    if d.company_number:
        lines.append(f"Company number:   {d.company_number}")
    if d.bank is not None:
        lines.append(f"Paid to:          {d.bank.kind} {d.bank.identifier}")
    activity = (
        "renting your charge point's parking space"
        if report.rules.activity is RelevantActivity.PROPERTY
        else "sales"
    )
    lines += ["", f"What you earned ({activity}), by quarter of the UK calendar year:", ""]
    rows = [(f"Q{q.quarter}", q.net_paid, q.fees_withheld, q.activities) for q in seller.figures.quarters]
    rows.append(("year", seller.consideration, seller.fees, seller.activities))
    lines.append(f"{'quarter':<8} {'credited to you':>16} {'our fees':>12} {'bookings':>9}")
    for label, credited, fees, count in rows:
        lines.append(f"{label:<8} {format_gbp(credited):>16} {format_gbp(fees):>12} {count:>9}")
    reported = ", ".join(f"Q{q.quarter} £{whole_pounds(q.net_paid):,}" for q in seller.figures.quarters)
    lines += ["", f"HMRC receives the amounts credited to you in whole pounds: {reported}.", ""]
    return "\n".join(lines)


def seller_copy_name(report: PlatformReport, seller: SellerReport) -> str:
    return f"dpi-{report.year}-seller-{seller.host_id}.txt"
