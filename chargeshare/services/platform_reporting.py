"""The yearly report to HMRC of what hosts earned through the platform, and its check against the
books. Both read one snapshot: the journal, hosts, their seller details and when they signed up.

The whole journal is read once and folded in memory (a year's report is a batch job, run once a
year and again for corrections), rather than a query per host.
"""

from __future__ import annotations

from dataclasses import dataclass

from chargeshare.domain.availability import UK
from chargeshare.domain.platform_reporting import PlatformReport, ReportingRules, build_report, check_year
from chargeshare.domain.report_reconciliation import Discrepancy, reconcile
from chargeshare.services.ports import Store


@dataclass(frozen=True)
class CheckedReport:
    report: PlatformReport
    discrepancies: tuple[Discrepancy, ...]  # empty: it reconciles with the ledger and the payouts

    @property
    def ok(self) -> bool:
        """Fit to file: it reconciles, and every reportable seller can be identified."""
        return not self.discrepancies and not self.report.missing_details


class PlatformReportingService:
    def __init__(self, store: Store, rules: ReportingRules) -> None:
        self.store, self.rules = store, rules

    def report(self, year: int) -> CheckedReport:
        check_year(year)
        with self.store.reading() as tx:
            entries = tx.ledger.entries()
            names = {h.host_id: h.name for h in tx.accounts.hosts()}
            details = tx.accounts.all_seller_details()
            # The UK date each host signed up on: the start of their registration with the platform.
            signed_up = {
                a.host_id: a.created_at.astimezone(UK).date()
                for a in tx.accounts.all()
                if a.host_id is not None
            }
        report = build_report(
            year, self.rules, entries, host_names=names, details=details, registered_on=signed_up
        )
        return CheckedReport(report, tuple(reconcile(report, entries)))
