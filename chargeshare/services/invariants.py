"""The invariants every run must keep, checked over the store after a simulation or scenario.

Each check returns a result naming what it proves and, when it fails, the first offenders.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from chargeshare.domain.booking import LIVE_STATES, BookingStatus, overlaps
from chargeshare.domain.errors import LedgerError
from chargeshare.domain.ledger import EntryKind, JournalEntry
from chargeshare.domain.money import split_fee
from chargeshare.domain.session import SessionStatus
from chargeshare.domain.tariff import Tariff
from chargeshare.services.ports import Store, Transaction
from chargeshare.services.records import BookingRecord, SessionRecord

MAX_DETAILS = 5


@dataclass(frozen=True)
class InvariantResult:
    name: str
    description: str
    ok: bool
    checked: int
    failures: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Snapshot:
    bookings: Sequence[BookingRecord]
    sessions: Sequence[SessionRecord]
    entries: Sequence[JournalEntry]
    posting_sums: dict[str, int]
    platform_fee_bps: int

    @classmethod
    def read(cls, tx: Transaction, platform_fee_bps: int) -> Snapshot:
        return cls(tx.bookings(), tx.sessions(), tx.entries(), tx.posting_sums(), platform_fee_bps)

    def by_booking(self) -> dict[int, list[JournalEntry]]:
        out: dict[int, list[JournalEntry]] = defaultdict(list)
        for e in self.entries:
            out[e.booking_id].append(e)
        return out


def _result(name: str, description: str, checked: int, failures: list[str]) -> InvariantResult:
    return InvariantResult(name, description, not failures, checked, tuple(failures[:MAX_DETAILS]))


def no_overlapping_bookings(s: Snapshot) -> InvariantResult:
    per_connector: dict[int, list[BookingRecord]] = defaultdict(list)
    for b in s.bookings:
        if b.status in LIVE_STATES:
            per_connector[b.connector_id].append(b)
    failures = []
    for connector_id, items in per_connector.items():
        items.sort(key=lambda b: b.starts_at)
        for a, b in itertools.pairwise(items):
            if overlaps(a.starts_at, a.ends_at, b.starts_at, b.ends_at):
                failures.append(
                    f"connector {connector_id}: bookings {a.booking_id} and {b.booking_id} overlap"
                )
    return _result(
        "no_overlapping_bookings", "no two live bookings overlap on a connector", len(s.bookings), failures
    )


def journal_balanced(s: Snapshot) -> InvariantResult:
    failures = [f"entry {eid} sums to {total}" for eid, total in s.posting_sums.items() if total != 0]
    return _result(
        "journal_balanced", "every journal entry's postings sum to zero", len(s.posting_sums), failures
    )


def _captured(entries: list[JournalEntry]) -> int:
    return sum(e.amount for e in entries if e.kind is EntryKind.CAPTURE)


def captured_equals_metered_cost(s: Snapshot) -> InvariantResult:
    """Per booking: captured = tariff x metered energy of its stopped session + its fee (if any)."""
    ledger = s.by_booking()
    sessions = {x.booking_id: x for x in s.sessions if x.status is SessionStatus.STOPPED}
    failures = []
    checked = 0
    for b in s.bookings:
        session = sessions.get(b.booking_id)
        captured = _captured(ledger[b.booking_id])
        if session is None and not b.fee and not captured:
            continue
        checked += 1
        cost = 0 if session is None else Tariff(b.price_per_kwh).cost(session.billed_wh or 0)
        if captured != cost + b.fee or (session is not None and session.cost != cost):
            failures.append(
                f"booking {b.booking_id}: captured {captured}p, metered cost {cost}p + fee {b.fee}p"
            )
    return _result(
        "captured_equals_metered_cost",
        "captured = tariff x metered energy (+ fees), per booking",
        checked,
        failures,
    )


def cost_split(s: Snapshot) -> InvariantResult:
    failures = []
    checked = 0
    for booking_id, entries in s.by_booking().items():
        captured = _captured(entries)
        splits = [e for e in entries if e.kind is EntryKind.SPLIT]
        if not captured and not splits:
            continue
        checked += 1
        expected = split_fee(captured, s.platform_fee_bps)
        host = -sum(p.amount for e in splits for p in e.postings if p.account.startswith("host:"))
        fee = -sum(p.amount for e in splits for p in e.postings if p.account == "platform:revenue")
        if (host, fee) != (expected.host_share, expected.platform_fee) or host + fee != captured:
            failures.append(f"booking {booking_id}: captured {captured}p split host {host}p + fee {fee}p")
    return _result("cost_split", "captured = host share + platform fee", checked, failures)


def capture_within_hold(s: Snapshot) -> InvariantResult:
    failures = []
    checked = 0
    for booking_id, entries in s.by_booking().items():
        held = sum(e.amount for e in entries if e.kind is EntryKind.HOLD)
        captured = _captured(entries)
        checked += 1
        if captured > held:
            failures.append(f"booking {booking_id}: captured {captured}p beyond hold {held}p")
    return _result("capture_within_hold", "nothing captured beyond its hold", checked, failures)


def _hold_resolutions(s: Snapshot) -> tuple[list[JournalEntry], dict[str, int]]:
    resolved: dict[str, int] = defaultdict(int)
    for e in s.entries:
        if e.pending_id is not None:
            resolved[e.pending_id] += 1
    return [e for e in s.entries if e.kind is EntryKind.HOLD], resolved


def hold_resolved_at_most_once(s: Snapshot) -> InvariantResult:
    holds, resolved = _hold_resolutions(s)
    failures = [
        f"hold {h.entry_id} resolved {resolved[h.entry_id]} times" for h in holds if resolved[h.entry_id] > 1
    ]
    return _result("hold_resolved_once", "no hold is captured or released twice", len(holds), failures)


def every_hold_ended(s: Snapshot) -> InvariantResult:
    holds, resolved = _hold_resolutions(s)
    failures = [f"hold {h.entry_id} is still pending" for h in holds if resolved[h.entry_id] == 0]
    return _result("every_hold_ended", "every hold ended: captured or released", len(holds), failures)


def billed_energy_matches_meter(s: Snapshot) -> InvariantResult:
    stopped = [x for x in s.sessions if x.status is SessionStatus.STOPPED]
    failures = [
        f"session {x.session_id}: billed {x.billed_wh} Wh, meter {x.meter_start_wh}->{x.meter_stop_wh}"
        for x in stopped
        if x.meter_stop_wh is None or x.billed_wh != x.meter_stop_wh - x.meter_start_wh
    ]
    return _result(
        "billed_energy_matches_meter", "billed Wh = meter stop - meter start", len(stopped), failures
    )


def no_open_sessions(s: Snapshot) -> InvariantResult:
    open_ = [x for x in s.sessions if x.status is not SessionStatus.STOPPED]
    active = [b for b in s.bookings if b.status in (BookingStatus.ACTIVE, BookingStatus.REQUESTED)]
    failures = [f"session {x.session_id} still charging" for x in open_]
    failures += [f"booking {b.booking_id} still {b.status}" for b in active]
    return _result(
        "everything_settled",
        "at the end no session is charging and no booking is in flight",
        len(s.sessions) + len(s.bookings),
        failures,
    )


CHECKS: tuple[Callable[[Snapshot], InvariantResult], ...] = (
    no_overlapping_bookings,
    journal_balanced,
    captured_equals_metered_cost,
    cost_split,
    capture_within_hold,
    hold_resolved_at_most_once,
    billed_energy_matches_meter,
)
FINAL_CHECKS: tuple[Callable[[Snapshot], InvariantResult], ...] = (every_hold_ended, no_open_sessions)


def check_snapshot(s: Snapshot, *, final: bool = True) -> list[InvariantResult]:
    """Run every check; `final` adds those that only hold once a run has wound down."""
    return [check(s) for check in CHECKS + (FINAL_CHECKS if final else ())]


def check_store(store: Store, platform_fee_bps: int, *, final: bool = True) -> list[InvariantResult]:
    with store.transaction() as tx:
        try:
            snapshot = Snapshot.read(tx, platform_fee_bps)
        except LedgerError as exc:  # an entry so broken it cannot even be loaded
            sums = tx.posting_sums()
            bad = [f"{eid} sums to {v}" for eid, v in sums.items() if v != 0] or [str(exc)]
            return [_result("journal_balanced", "every journal entry's postings sum to zero", len(sums), bad)]
    return check_snapshot(snapshot, final=final)
