"""The end-of-run report: what happened (summary) and whether it was right (invariants)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.bootstrap import App
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.ledger import PLATFORM_REVENUE, VAT_PAYABLE, EntryKind
from chargeshare.services.invariants import InvariantResult, provider_agrees_with_ledger, read_and_check
from simulators.driver import DriverStats


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
        if not self.deterministic:
            body["wall_seconds"] = round(self.wall_s, 3)
            body["clock_held_seconds"] = round(self.clock_held_s, 3)
        return json.dumps(body, indent=2, sort_keys=True)


def summarise(app: App, params: dict[str, Any], stats: DriverStats, *, wall_s: float) -> RunReport:
    snapshot, invariants = read_and_check(app.store, app.config.rules, now=app.clock.now())
    with app.store.transaction() as tx:
        if snapshot is None:  # the journal cannot be loaded: reading it again says why
            bookings, sessions, entries = tx.bookings.all(), tx.sessions.all(), tx.ledger.entries()
        else:
            bookings, sessions, entries = snapshot.bookings, snapshot.sessions, snapshot.entries
        payments = tx.outbox.all()
        notes = tx.notifications.all()
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
    }
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
    return RunReport(params, summary, invariants, list(stats.errors), wall_s)
