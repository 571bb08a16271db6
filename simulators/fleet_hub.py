"""A fleet-share hub in a simulated run: a business account's vans charging on recurring night blocks
across several hosts' chargers, with drivers booking around them.

The shape (`HubShape`) is read from a scenario's `fleet_hub` section; the discrete-event engine plays
it (`simulators.des.fleet_hub`); `hub_summary` is the run report's `fleet_hub` breakdown, read from
the backend's books at the end of any run (zeros where no hub ran).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from chargeshare.bootstrap import App
from chargeshare.domain.fleet import UK, WEEKDAYS, BlockRule, ContractPolicy, month_end, month_of
from chargeshare.domain.fleet_ledger import fleet_receivable, fleet_unbilled
from chargeshare.domain.ledger import EntryKind

HUB_TAG = "FLEET-HUB"
# What the hub's vans and hosts did, counted as the run goes (`DriverStats.fleet_hub`).
COUNTED = ("block_clashes", "van_arrivals", "vans_refused", "occurrences_cancelled_late")
# The report's fleet_hub breakdown: the books' figures, then the counts.
SUMMARY_NAMES = (
    "occurrences",
    "sessions",
    "energy_wh",
    "charged_pence",
    "penalties_pence",
    "invoices",
    "invoiced_pence",
    "paid_pence",
    "receivable_pence",
    "unbilled_pence",
    "driver_bookings_on_hub",
    *COUNTED,
)


@dataclass(frozen=True)
class HubShape:
    chargers: int = 3  # the fleet's first this many chargers, each a host of its own in a simulated fleet
    weekdays: frozenset[int] = WEEKDAYS
    start: time = time(20)
    end: time = time(6)
    notice_hours: int = 48
    late_penalty: int = 2_500
    van_wh: int = 30_000  # what each van wants each night
    van_arrival_max_s: int = 600  # vans arrive within this long after the block starts
    late_cancels: int = 0  # occurrences hosts cancel inside the notice, early in the run
    pay_percent: int = 100  # of each invoice the fleet pays at the end of the run

    def rule(self, start: datetime, duration_s: int) -> BlockRule:
        """The blocks starting on the run's days (UK), up to the day before it ends."""
        first = start.astimezone(UK).date()
        last = (start + timedelta(seconds=duration_s)).astimezone(UK).date()
        return BlockRule(self.weekdays, self.start, self.end, first, max(first, last - timedelta(days=1)))

    def policy(self) -> ContractPolicy:
        return ContractPolicy(timedelta(hours=self.notice_hours), self.late_penalty)

    def as_dict(self) -> dict[str, Any]:
        return {
            "chargers": self.chargers,
            "weekdays": sorted(self.weekdays),
            "start": self.start.isoformat("minutes"),
            "end": self.end.isoformat("minutes"),
            "notice_hours": self.notice_hours,
            "late_penalty": self.late_penalty,
            "van_wh": self.van_wh,
            "late_cancels": self.late_cancels,
            "pay_percent": self.pay_percent,
        }


def months_over(start: datetime, now: datetime) -> list[str]:
    """The UK months from the run's start that are over by `now`, oldest first."""
    months, month = [], month_of(start)
    while month_end(month) <= now:
        months.append(month)
        year, mon = int(month[:4]), int(month[5:])
        month = f"{year + mon // 12}-{mon % 12 + 1:02d}"
    return months


def settle_accounts(app: App, fleet_id: int, start: datetime, pay_percent: int) -> None:
    """The end of the run: each month that is over invoiced (asked twice, as an operator might: the
    second changes nothing) and paid as much as the shape says."""
    for month in months_over(start, app.clock.now()):
        app.fleet.invoice(fleet_id, month)
        issued = app.fleet.invoice(fleet_id, month).invoice
        amount = issued.outstanding * pay_percent // 100
        if amount > 0:
            app.fleet.pay(fleet_id, month, amount)


def hub_summary(app: App, counts: Counter[str]) -> dict[str, int]:
    out = dict.fromkeys(SUMMARY_NAMES, 0)
    with app.store.reading() as tx:
        fleets = tx.fleet.accounts()
        occurrences = tx.fleet.occurrences()
        ids = [o.booking_id for o in occurrences]
        sessions = tx.sessions.for_bookings(ids)
        entries = [e for es in tx.ledger.entries_of(ids).values() for e in es]
        invoices = tx.fleet.invoices()
        hub_connectors = {
            k for f in fleets for c in tx.fleet.contracts_of(f.fleet_id) for k in c.connector_ids
        }
        others = [
            b for b in tx.bookings.all() if b.connector_id in hub_connectors and b.booking_id not in ids
        ]
        balances: Counter[str] = Counter()
        for f in fleets:
            for account in (fleet_receivable(f.fleet_id), fleet_unbilled(f.fleet_id)):
                for e in tx.ledger.entries(account=account):
                    balances[account] += sum(p.amount for p in e.postings if p.account == account)
    out["occurrences"] = len(occurrences)
    out["sessions"] = len(sessions)
    out["energy_wh"] = sum(s.billed_wh or 0 for s in sessions.values())
    out["charged_pence"] = sum(e.amount for e in entries if e.kind is EntryKind.ON_ACCOUNT)
    out["penalties_pence"] = sum(e.amount for e in entries if e.kind is EntryKind.FLEET_PENALTY)
    out["invoices"] = len(invoices)
    out["invoiced_pence"] = sum(i.total for i in invoices)
    out["paid_pence"] = sum(i.paid for i in invoices)
    out["receivable_pence"] = sum(balances[fleet_receivable(f.fleet_id)] for f in fleets)
    out["unbilled_pence"] = sum(balances[fleet_unbilled(f.fleet_id)] for f in fleets)
    out["driver_bookings_on_hub"] = len(others)  # drivers' bookings between the blocks
    for name in COUNTED:
        out[name] = counts[name]
    return out
