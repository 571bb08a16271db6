"""The end-of-run report: what happened (summary) and whether it was right (invariants)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.ledger import PLATFORM_REVENUE, VAT_PAYABLE, EntryKind, JournalEntry, payable_host
from chargeshare.domain.platform_reporting import ReportingRules, build_report
from chargeshare.domain.report_reconciliation import reconcile
from chargeshare.domain.statement import year_and_quarter
from chargeshare.services.charging import CHARGER_OFFLINE
from chargeshare.services.invariants import (
    InvariantResult,
    provider_agrees_with_ledger,
    read_and_check,
    registers_apart,
)
from chargeshare.services.records import BookingRecord, ChargerView, SessionRecord
from simulators.driver import DriverStats
from simulators.fleet_hub import hub_summary
from simulators.grid_metrics import empty_summary as empty_grid_summary
from simulators.pricing_metrics import pricing_summary
from simulators.smart_metrics import smart_charging_summary
from simulators.v2g import v2g_summary


@dataclass(frozen=True)
class ChargerRow:
    """One charger at the end of a run, for the HTML report's table (not in the JSON report)."""

    charge_point_id: str
    protocol: str  # the OCPP version it spoke, "" if it never booted
    connectors: int
    max_power_w: int  # all its connectors at once
    status: str  # after the wind-down, which disconnects every charger
    bookings: int
    sessions: int
    energy_wh: int  # billed
    billed_pence: int  # sessions' cost, idle fees included
    # Times its host was told so before the wind-down; None when its host has other chargers.
    went_offline: int | None


@dataclass(frozen=True)
class RunReport:
    params: dict[str, Any]
    summary: dict[str, Any]
    invariants: list[InvariantResult]
    errors: list[str]
    wall_s: float
    # A discrete-event run's report leaves the wall time out, so the same seed gives the same bytes.
    deterministic: bool = False
    # Live runs: real seconds simulated time stood still waiting for a busy machine (large: starved).
    clock_held_s: float = 0.0
    # What the command line changed in a scenario file's parameters: {name: {"file": x, "given": y}}.
    overrides: dict[str, Any] = field(default_factory=dict)
    # Each fault fired, in the scenario's order: when it started and ended, the chargers it hit.
    fault_log: list[dict[str, Any]] = field(default_factory=list)
    chargers: tuple[ChargerRow, ...] = ()
    # Each feeder's sampled load and limit over the run (minutes, W), for the feeder plot.
    grid_feeders: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.invariants) and not self.errors

    def to_json(self) -> str:
        body = {
            "ok": self.ok,
            "params": self.params,
            "summary": self.summary,
            "invariants": [asdict(r) for r in self.invariants],
            "errors": self.errors,
        }
        if self.overrides:  # absent otherwise: reports of runs without them keep their bytes
            body["overrides"] = self.overrides
        if self.fault_log:
            body["fault_log"] = self.fault_log
        if self.grid_feeders:
            body["grid_feeders"] = self.grid_feeders
        if not self.deterministic:
            body["wall_seconds"] = round(self.wall_s, 3)
            body["clock_held_seconds"] = round(self.clock_held_s, 3)
        return json.dumps(body, indent=2, sort_keys=True)


def platform_reporting_figures(entries: Sequence[JournalEntry]) -> tuple[int, int]:
    """HMRC platform reporting over the run: the active sellers of each calendar year the run's
    host credits fall in, and the discrepancies found reconciling those years' reports with the
    ledger (domain.report_reconciliation). Identity plays no part, so no seller details are needed."""
    years = sorted(
        {
            year_and_quarter(e.created_at)[0]
            for e in entries
            if any(payable_host(p.account) is not None for p in e.postings)
        }
    )
    sellers = discrepancies = 0
    for year in years:
        report = build_report(year, ReportingRules(), entries, host_names={}, details={}, registered_on={})
        sellers += len(report.sellers)
        discrepancies += len(reconcile(report, entries))
    return sellers, discrepancies


def summarise(app: App, params: dict[str, Any], stats: DriverStats, *, wall_s: float) -> RunReport:
    snapshot, invariants = read_and_check(app.store, app.config.rules, now=app.clock.now())
    with app.store.transaction() as tx:
        if snapshot is None:  # the journal cannot be loaded: reading it again says why
            bookings, sessions, entries = tx.bookings.all(), tx.sessions.all(), tx.ledger.entries()
        else:
            bookings, sessions, entries = snapshot.bookings, snapshot.sessions, snapshot.entries
        payments = tx.outbox.all()
        notes = tx.notifications.all()
        chargers = tx.chargers.all()
        quotes = tx.pricing.quotes() if snapshot is None else snapshot.quotes
        held_used = len(tx.pricing.held_used_by() if snapshot is None else snapshot.held_quotes)
        security_events = len(tx.security.all())
    captured = sum(e.amount for e in entries if e.kind is EntryKind.CAPTURE)
    splits = [p for e in entries if e.kind is EntryKind.SPLIT for p in e.postings]
    host = -sum(p.amount for p in splits if p.account.startswith("host:"))
    vat = -sum(p.amount for p in splits if p.account == VAT_PAYABLE)
    fee = -sum(p.amount for p in splits if p.account == PLATFORM_REVENUE) + vat  # fees are VAT-inclusive
    by_status = Counter(b.status.value for b in bookings)
    summary = {
        "bookings": len(bookings),
        "bookings_by_status": dict(sorted(by_status.items())),
        "booking_conflicts": stats.conflicts,
        "bookings_refused_payments_down": stats.payments_down,
        "sessions": len(sessions),
        "energy_wh": sum(s.billed_wh or 0 for s in sessions),
        "captured_pence": captured,
        "host_payouts_pence": host,
        "paid_out_pence": sum(e.amount for e in entries if e.kind is EntryKind.PAYOUT),
        "platform_fees_pence": fee,
        "vat_pence": vat,
        "processor_fees_pence": sum(e.amount for e in entries if e.kind is EntryKind.PROCESSOR_FEE),
        "driver_outcomes": dict(sorted(stats.outcomes.items())),
        "no_charger_because": dict(sorted(stats.no_charger_because.items())),
        "cancelled_by_host": sum(1 for b in bookings if b.cancelled_by == "host"),
        "fees_pence": sum(b.fee for b in bookings),
        "faults_fired": stats.faults_fired,
        "payments_backlog": stats.payments_backlog,
        "charger_reconnects": stats.charger_reconnects,
        "frames_left_queued": stats.frames_left_queued,
        "chargers_went_offline": stats.chargers_went_offline,
        "hosts_notified": len(notes),
        "security_events": security_events,
        "sessions_closed_without_stop": stats.sessions_closed_without_stop,
        "dead_letters": sum(1 for p in payments if p.status == "dead"),
        "payments_retried": sum(1 for p in payments if p.attempts > 1),
        "smart_charging": smart_charging_summary(app, stats.smart_gates),
        "pricing": pricing_summary(quotes, sessions, chargers, _window(params), held_used),
        "fleet_hub": hub_summary(app, stats.fleet_hub),
        "grid": empty_grid_summary() if stats.grid is None else stats.grid.summary(),
        "v2g": v2g_summary(app),
    }
    if stats.grid is not None:
        invariants.append(stats.grid.invariant())
    if stats.v2g_registers is not None and snapshot is not None:
        invariants.append(registers_apart(snapshot, stats.v2g_registers))
    summary["dpi_sellers"], summary["dpi_discrepancies"] = platform_reporting_figures(entries)
    if stats.bookings_answered is not None:
        summary["bookings_no_driver_heard_of"] = sum(
            1
            for b in bookings
            if b.booking_id not in stats.bookings_answered and b.status is not BookingStatus.FAILED
        )
    gateway = app.gateway
    if isinstance(gateway, SimulatedGateway):
        provider = gateway.total_captured, gateway.open_authorisations()
        invariants += provider_agrees_with_ledger(entries, *provider)
    fault_log = [r.as_dict() for r in sorted(stats.fault_log, key=lambda r: r.index)]
    in_window = [
        n for n in notes if stats.wind_down_from is None or _at(n["created_at"]) < stats.wind_down_from
    ]
    rows = charger_rows(chargers, bookings, sessions, in_window)
    return RunReport(
        params,
        summary,
        invariants,
        list(stats.errors),
        wall_s,
        fault_log=fault_log,
        chargers=rows,
        grid_feeders={} if stats.grid is None else stats.grid.feeder_series(),
    )


def _window(params: dict[str, Any]) -> tuple[datetime, int] | None:
    """The run's window (start, seconds) when its parameters say it (a replay's do not)."""
    if "start" not in params or "duration_s" not in params:
        return None
    return datetime.fromisoformat(params["start"]), int(params["duration_s"])


def charger_rows(
    chargers: Sequence[ChargerView],
    bookings: Sequence[BookingRecord],
    sessions: Sequence[SessionRecord],
    notes: Sequence[dict[str, object]],
) -> tuple[ChargerRow, ...]:
    owner = {x.connector_id: c.charge_point_id for c in chargers for x in c.connectors}
    booked = Counter(owner.get(b.connector_id) for b in bookings)
    ran: dict[str | None, list[SessionRecord]] = {}
    for session in sessions:
        ran.setdefault(owner.get(session.connector_id), []).append(session)
    hosts = Counter(c.host_id for c in chargers)
    offline = Counter(n["host_id"] for n in notes if n["kind"] == CHARGER_OFFLINE)
    rows = []
    for c in sorted(chargers, key=lambda c: c.charge_point_id):
        mine = ran.get(c.charge_point_id, [])
        rows.append(
            ChargerRow(
                charge_point_id=c.charge_point_id,
                protocol=c.ocpp_version or "",
                connectors=len(c.connectors),
                max_power_w=sum(x.max_power_w for x in c.connectors),
                status=c.status.value,
                bookings=booked[c.charge_point_id],
                sessions=len(mine),
                energy_wh=sum(s.billed_wh or 0 for s in mine),
                billed_pence=sum(s.cost or 0 for s in mine),
                went_offline=offline[c.host_id] if hosts[c.host_id] == 1 else None,
            )
        )
    return tuple(rows)


def _at(value: object) -> datetime:
    assert isinstance(value, datetime)
    return value
