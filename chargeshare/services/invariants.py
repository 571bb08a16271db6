"""The invariants every run must keep, checked over the store after a simulation or scenario.

Each check returns a result naming what it proves and, when it fails, the first offenders.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from chargeshare.domain.booking import FINAL_STATES, LIVE_STATES, BookingStatus, overlaps
from chargeshare.domain.errors import LedgerError
from chargeshare.domain.fleet import IssuedInvoice, Occurrence, month_of
from chargeshare.domain.fleet_ledger import receivable_fleet
from chargeshare.domain.grid_limits import LoadSample, Scope, overloads
from chargeshare.domain.grid_settlement import (
    GridSettlement,
    buyer_movement,
    settled_month,
)
from chargeshare.domain.held_quotes import HeldQuote
from chargeshare.domain.ledger import (
    CHARGED_KINDS,
    EXPORT_CREDIT_KINDS,
    GRID_EXPORT_BUYER,
    PLATFORM_REVENUE,
    VAT_PAYABLE,
    EntryKind,
    JournalEntry,
    export_buyer_account,
    export_credit_driver,
    host_payable,
)
from chargeshare.domain.money import split_fee
from chargeshare.domain.session import SessionStatus
from chargeshare.domain.tariff import Tariff
from chargeshare.domain.v2g import ExportRecord, ExportTerms, export_credit
from chargeshare.services.ports import Store, UnitOfWork
from chargeshare.services.records import BookingQuote, BookingRecord, OutboxItem, SessionRecord
from chargeshare.services.rules import MarketplaceRules
from chargeshare.services.v2g import late_export_span

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
    entries: Sequence[JournalEntry]  # by time, then as written (as every store's ledger returns them)
    posting_sums: dict[str, int]
    rules: MarketplaceRules
    now: datetime | None = None  # when given, open holds must not have outlived their lifetime
    payments: Sequence[OutboxItem] = ()
    quotes: Mapping[int, BookingQuote] = field(default_factory=dict)  # by booking id
    fleet_occurrences: Sequence[Occurrence] = ()
    fleet_invoices: Sequence[IssuedInvoice] = ()
    export_terms: Sequence[ExportTerms] = ()
    export_records: Sequence[ExportRecord] = ()
    held_quotes: Mapping[int, HeldQuote] = field(default_factory=dict)  # used ones, by booking id
    grid_settlements: Sequence[GridSettlement] = ()

    @classmethod
    def read(cls, tx: UnitOfWork, rules: MarketplaceRules, now: datetime | None = None) -> Snapshot:
        return cls(
            tx.bookings.all(),
            tx.sessions.all(),
            tx.ledger.entries(),
            tx.ledger.posting_sums(),
            rules,
            now,
            tx.outbox.all(),
            tx.pricing.quotes(),
            tx.fleet.occurrences(),
            tx.fleet.invoices(),
            tx.v2g.all_terms(),
            tx.v2g.records(),
            tx.pricing.held_used_by(),
            tx.v2g.settlements(),
        )

    def by_booking(self) -> dict[int, list[JournalEntry]]:
        out: dict[int, list[JournalEntry]] = defaultdict(list)
        for e in self.entries:
            if e.booking_id is not None:
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
    """What the booking's customer was charged: captured from a card, or charged on account."""
    return sum(e.amount for e in entries if e.kind in CHARGED_KINDS)


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
        cost = 0
        if session is not None:
            cost = Tariff(b.price_per_kwh).cost(session.billed_wh or 0) + session.idle_fee
        if captured != cost + b.fee or (session is not None and session.cost != cost):
            failures.append(
                f"booking {b.booking_id}: captured {captured}p, session cost {cost}p + fee {b.fee}p"
            )
    return _result(
        "captured_equals_metered_cost",
        "captured = tariff x metered energy (+ idle, no-show and late fees), per booking",
        checked,
        failures,
    )


def capture_matches_quote(s: Snapshot) -> InvariantResult:
    """Per quoted booking: its price is the quote, and its session is billed and captured at it. A
    booking made with a quote held for its driver was quoted that quote's price, and keeps to the
    quote's driver, charger and window."""
    ledger = s.by_booking()
    sessions = {x.booking_id: x for x in s.sessions if x.status is SessionStatus.STOPPED}
    failures = []
    checked = 0
    for b in s.bookings:
        quote = s.quotes.get(b.booking_id)
        held = s.held_quotes.get(b.booking_id)
        if quote is None:
            if held is not None:
                checked += 1
                failures.append(f"booking {b.booking_id}: made with quote {held.quote_id}, but not quoted")
            continue
        checked += 1
        if held is not None and (
            quote.per_kwh != held.per_kwh or not held.fits(b.driver_id, b.charger_id, b.starts_at, b.ends_at)
        ):
            failures.append(
                f"booking {b.booking_id}: quoted {quote.per_kwh}p/kWh from {b.starts_at.isoformat()}, made "
                f"with quote {held.quote_id} held at {held.per_kwh}p/kWh from {held.starts_at.isoformat()}"
            )
            continue
        if b.price_per_kwh != quote.per_kwh:
            failures.append(
                f"booking {b.booking_id}: priced {b.price_per_kwh}p/kWh, quoted {quote.per_kwh}p/kWh"
            )
            continue
        session = sessions.get(b.booking_id)
        if session is None:
            continue
        cost = Tariff(quote.per_kwh).cost(session.billed_wh or 0) + session.idle_fee
        captured = _captured(ledger[b.booking_id])
        # Nothing captured yet is a payment step still due: captured_equals_metered_cost's to see.
        if session.cost != cost or captured not in (0, cost + b.fee):
            failures.append(
                f"booking {b.booking_id}: quoted {quote.per_kwh}p/kWh for {session.billed_wh}Wh is {cost}p, "
                f"billed {session.cost}p, captured {captured}p"
            )
    return _result(
        "capture_matches_quote",
        "a booking is billed and captured at the price it was quoted when made (its held quote's, if any)",
        checked,
        failures,
    )


def cost_split(s: Snapshot) -> InvariantResult:
    """Per booking: captured = host share + platform fee, the fee's VAT owed in full."""
    failures = []
    checked = 0
    for booking_id, entries in s.by_booking().items():
        captured = _captured(entries)
        splits = [e for e in entries if e.kind is EntryKind.SPLIT]
        if not captured and not splits:
            continue
        checked += 1
        # Each capture is split on its own, so compare against the sum of the per-capture splits.
        expected = [
            split_fee(e.amount, s.rules.platform_fee_bps, s.rules.vat_bps)
            for e in entries
            if e.kind in CHARGED_KINDS
        ]
        want = (
            sum(x.host_share for x in expected),
            sum(x.platform_revenue for x in expected),
            sum(x.vat for x in expected),
        )
        credits: dict[str, int] = defaultdict(int)
        for e in splits:
            for p in e.postings:
                kind = "host" if p.account.startswith("host:") else p.account
                credits[kind] -= p.amount
        got = (credits["host"], credits[PLATFORM_REVENUE], credits[VAT_PAYABLE])
        if got != want or sum(got) != captured:
            failures.append(
                f"booking {booking_id}: captured {captured}p split host/revenue/VAT {got}, want {want}"
            )
    return _result("cost_split", "captured = host share + platform fee (incl. VAT)", checked, failures)


def capture_within_hold(s: Snapshot) -> InvariantResult:
    holds = {e.entry_id: e for e in s.entries if e.kind is EntryKind.HOLD}
    captures = [e for e in s.entries if e.kind is EntryKind.CAPTURE]
    failures = [
        f"capture {c.entry_id} of {c.amount}p beyond its hold"
        for c in captures
        if c.pending_id not in holds or c.amount > holds[c.pending_id].amount
    ]
    return _result("capture_within_hold", "nothing captured beyond its hold", len(captures), failures)


def holds_within_lifetime(s: Snapshot) -> InvariantResult:
    holds, resolved = _hold_resolutions(s)
    open_ = [h for h in holds if resolved[h.entry_id] == 0]
    failures = []
    if s.now is not None:
        limit = timedelta(days=s.rules.hold_lifetime_days)
        failures = [
            f"hold {h.entry_id} from {h.created_at:%Y-%m-%d %H:%M} has lapsed"
            for h in open_
            if h.created_at + limit <= s.now
        ]
    return _result(
        "holds_within_lifetime", "no open hold older than the provider keeps it", len(open_), failures
    )


def processor_fees_recorded(s: Snapshot) -> InvariantResult:
    """Every capture carries the processor's fee for it, so the platform's margin is never overstated."""
    fees = {e.entry_id: e.amount for e in s.entries if e.kind is EntryKind.PROCESSOR_FEE}
    captures = [e for e in s.entries if e.kind is EntryKind.CAPTURE]
    failures = [
        f"capture {c.entry_id}: processor fee {fees.get(c.entry_id + '-processing', 0)}p, "
        f"want {s.rules.processor_fee(c.amount)}p"
        for c in captures
        if fees.get(c.entry_id + "-processing", 0) != s.rules.processor_fee(c.amount)
    ]
    return _result(
        "processor_fees_recorded",
        "each capture's processing fee is booked as the platform's cost",
        len(captures),
        failures,
    )


def payouts_within_earnings(s: Snapshot) -> InvariantResult:
    """A host's payout never exceeds what it was owed when it was made: its shares less what its
    home bought of its guests' export, less what was paid before, in time order and at one instant
    in the order written (a payout and a purchase lock their host's row before reading the clock,
    so that is the order they happened). A purchase after a payout may leave the host owing (its
    payable in debit) without that payout having paid too much."""
    owed: dict[str, int] = defaultdict(int)
    failures = []
    for e in sorted(s.entries, key=lambda e: e.created_at):  # stable: the order written at one instant
        for p in e.postings:
            if not p.account.startswith("host:"):
                continue
            if e.kind is EntryKind.PAYOUT and p.amount > owed[p.account]:
                failures.append(f"{p.account}: {e.entry_id} paid {p.amount}p of {owed[p.account]}p owed")
            if e.kind in (EntryKind.SPLIT, EntryKind.HOME_EXPORT_CREDIT, EntryKind.PAYOUT):
                owed[p.account] -= p.amount
    return _result(
        "payouts_within_earnings",
        "each host payout is within its shares of settled sessions less its home's export bought "
        "and its payouts before",
        len(owed),
        failures,
    )


def _hold_resolutions(s: Snapshot) -> tuple[list[JournalEntry], dict[str, int]]:
    return _hold_resolutions_of(s.entries)


def _hold_resolutions_of(entries: Sequence[JournalEntry]) -> tuple[list[JournalEntry], dict[str, int]]:
    resolved: dict[str, int] = defaultdict(int)
    for e in entries:
        if e.pending_id is not None:
            resolved[e.pending_id] += 1
    return [e for e in entries if e.kind is EntryKind.HOLD], resolved


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


def late_stops_unbilled_once(s: Snapshot) -> InvariantResult:
    """A late stop kept (it came after its session was closed and captured) keeps an import reading
    above the one billed, so the energy it reports unbilled was never billed too, or an export
    reading. A session's late export reading (the highest any late stop brought) above the reading
    credited is uncredited: kept with a late stop, or, with a rebill alone, worth less than a penny
    yet (credited with a later reading). The description totals what was left unbilled and
    uncredited."""
    kept = [x for x in s.sessions if x.late_stop_at is not None]
    rebilled = [x for x in s.sessions if x.late_stop_at is None and x.late_rebilled_at is not None]
    prices = {b.booking_id: b.price_per_kwh for b in s.bookings}
    export_prices = {t.booking_id: t.price_per_kwh for t in s.export_terms}
    records = {r.booking_id: r for r in s.export_records}
    failures, unbilled_wh, unbilled_p, uncredited_wh, uncredited_p = [], 0, 0, 0, 0
    for x in kept:
        if x.late_stop_wh is None:
            if x.late_export_wh is None:
                failures.append(f"session {x.session_id}: a late stop kept with no reading")
            continue
        if x.meter_stop_wh is None or x.billed_wh is None or x.late_stop_wh <= x.meter_stop_wh:
            failures.append(
                f"session {x.session_id}: late stop {x.late_stop_wh} Wh, billed to {x.meter_stop_wh} Wh"
            )
            continue
        tariff = Tariff(prices.get(x.booking_id, 0))
        unbilled_wh += x.late_stop_wh - x.meter_stop_wh
        unbilled_p += tariff.cost(x.late_stop_wh - x.meter_start_wh) - tariff.cost(x.billed_wh)
    for x in kept + rebilled:
        if x.late_export_wh is None:
            continue
        record = records.get(x.booking_id)
        if record is None or record.credit is None or record.start_wh is None or record.last_wh is None:
            failures.append(f"session {x.session_id}: late export {x.late_export_wh} Wh, nothing credited")
            continue
        if x.late_export_wh <= record.last_wh:
            continue  # credited with a rebill
        left_p = export_credit(x.late_export_wh - record.start_wh, export_prices.get(x.booking_id, 0))
        left_p -= record.credit
        if x.late_stop_at is None and left_p:
            failures.append(
                f"session {x.session_id}: billed in full, late export {x.late_export_wh} Wh credited "
                f"to {record.last_wh} Wh ({left_p}p left)"
            )
            continue
        uncredited_wh += x.late_export_wh - record.last_wh
        uncredited_p += left_p
    exports = f"; {uncredited_wh} Wh, {uncredited_p}p export uncredited" if uncredited_wh else ""
    return _result(
        "late_stops_unbilled_once",
        f"a stop that came after its session was closed and captured is above the reading billed "
        f"({len(kept)} such, {unbilled_wh} Wh, {unbilled_p}p unbilled{exports})",
        len(kept) + len(rebilled),
        failures,
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


def no_stale_placement(s: Snapshot) -> InvariantResult:
    """A booking waits for its card hold no longer than the placement timeout: after it, recovery has
    failed the booking (and voided the hold) even if the request placing it died."""
    waiting = [b for b in s.bookings if b.status is BookingStatus.REQUESTED]
    failures = []
    if s.now is not None:
        limit = timedelta(seconds=s.rules.hold_placement_timeout_s)
        failures = [
            f"booking {b.booking_id} has waited for its hold since {b.created_at:%Y-%m-%d %H:%M:%S}"
            for b in waiting
            if b.created_at + limit < s.now
        ]
    return _result(
        "no_stale_placement",
        "no booking waits for its card hold beyond the placement timeout",
        len(waiting),
        failures,
    )


def one_settlement_per_stopped_session(s: Snapshot) -> InvariantResult:
    """Each stopped session has exactly one capture step queued: none lost, none doubled."""
    captures: dict[int, int] = defaultdict(int)
    for item in s.payments:
        if item.step == "capture":
            captures[item.booking_id] += 1
    stopped = [x for x in s.sessions if x.status is SessionStatus.STOPPED]
    failures = [
        f"session {x.session_id} (booking {x.booking_id}) has {captures[x.booking_id]} capture steps"
        for x in stopped
        if captures[x.booking_id] != 1
    ]
    return _result(
        "one_settlement_per_stopped_session",
        "each stopped session has exactly one capture step",
        len(stopped),
        failures,
    )


# Payment steps that close a booking ended without charging: its fee is captured, or its hold released.
CLOSING_STEPS = frozenset({"fee", "release"})
UNUSED_ENDINGS = frozenset({BookingStatus.CANCELLED, BookingStatus.EXPIRED})
# The reservation state that records the charger as holding the connector for the booking: it
# answered Accepted. "sent" (asked, never answered) is not known to be held: it is asked again.
RESERVATION_HELD = "accepted"


def one_close_per_unused_booking(s: Snapshot) -> InvariantResult:
    """Each cancelled or expired booking whose hold was placed has exactly one closing step queued
    (its fee or its release), committed with the status change: none lost, none doubled."""
    closes: dict[int, int] = defaultdict(int)
    for item in s.payments:
        if item.step in CLOSING_STEPS:
            closes[item.booking_id] += 1
    ledger = s.by_booking()
    held = [
        b
        for b in s.bookings
        if b.status in UNUSED_ENDINGS and any(e.kind is EntryKind.HOLD for e in ledger[b.booking_id])
    ]
    failures = [
        f"booking {b.booking_id} ({b.status}) has {closes[b.booking_id]} fee or release steps"
        for b in held
        if closes[b.booking_id] != 1
    ]
    return _result(
        "one_close_per_unused_booking",
        "each cancelled or expired booking with a hold has exactly one fee or release step",
        len(held),
        failures,
    )


def no_reservation_held_after_booking_ended(s: Snapshot) -> InvariantResult:
    """At the end of a run no ended booking still records its charger reservation as held: a
    session's start takes it up, and an unused booking's end has it cancelled (the answer recorded)."""
    ended = [b for b in s.bookings if b.status in FINAL_STATES]
    failures = [
        f"booking {b.booking_id} ({b.status}) still has its reservation {b.reservation}"
        for b in ended
        if b.reservation == RESERVATION_HELD
    ]
    return _result(
        "no_reservation_held_after_booking_ended",
        "no ended booking still holds a charger reservation",
        len(ended),
        failures,
    )


def ledger_open_holds(entries: Sequence[JournalEntry]) -> dict[str, tuple[int, int]]:
    """Open holds per customer ("driver:<id>"): how many, and how much, the ledger still reserves."""
    holds, resolved = _hold_resolutions_of(entries)
    out: dict[str, tuple[int, int]] = {}
    for h in holds:
        if resolved[h.entry_id]:
            continue
        card = next(p.account for p in h.postings if p.amount > 0)
        customer = card.removesuffix(":card")
        count, amount = out.get(customer, (0, 0))
        out[customer] = (count + 1, amount + h.amount)
    return out


def provider_agrees_with_ledger(
    entries: Sequence[JournalEntry], captured: int, open_authorisations: dict[str, tuple[int, int]]
) -> list[InvariantResult]:
    """The provider's books against ours: what it captured is what the ledger posted, and every
    authorisation still open there is a hold still open in the ledger (none orphaned, none missing)."""
    posted = sum(e.amount for e in entries if e.kind is EntryKind.CAPTURE)
    ours = ledger_open_holds(entries)
    differ = [
        f"{c}: provider holds {open_authorisations.get(c, (0, 0))}, ledger {ours.get(c, (0, 0))}"
        for c in sorted(set(ours) | set(open_authorisations))
        if ours.get(c, (0, 0)) != open_authorisations.get(c, (0, 0))
    ]
    return [
        _result(
            "gateway_agrees_with_ledger",
            "the payment gateway captured what the ledger posted",
            1,
            [] if posted == captured else [f"gateway {captured}p vs ledger {posted}p"],
        ),
        _result(
            "provider_holds_match_ledger",
            "authorisations open at the provider = holds open in the ledger, per customer",
            len(set(ours) | set(open_authorisations)),
            differ,
        ),
    ]


def fleet_receivable_is_invoiced_less_paid(s: Snapshot) -> InvariantResult:
    """Per fleet: the ledger's receivable balance = its invoices' totals less what was paid of them."""
    owed: dict[int, int] = defaultdict(int)
    for invoice in s.fleet_invoices:
        owed[invoice.fleet_id] += invoice.outstanding
    balances: dict[int, int] = defaultdict(int)
    for e in s.entries:
        for p in e.postings:
            fleet_id = receivable_fleet(p.account)
            if fleet_id is not None:
                balances[fleet_id] += p.amount
    fleets = sorted(set(owed) | set(balances))
    failures = [
        f"fleet {f}: receivable {balances[f]}p, invoiced less paid {owed[f]}p"
        for f in fleets
        if balances[f] != owed[f]
    ]
    return _result(
        "fleet_receivable_is_invoiced_less_paid",
        "each fleet's receivable = invoiced - paid",
        len(fleets),
        failures,
    )


def fleet_bookings_overlap_nothing(s: Snapshot) -> InvariantResult:
    """No live block occurrence shares its connector's time with another live booking."""
    fleet = {o.booking_id for o in s.fleet_occurrences}
    live = defaultdict(list)
    for b in s.bookings:
        if b.status in LIVE_STATES:
            live[b.connector_id].append(b)
    failures = [
        f"fleet booking {a.booking_id} overlaps booking {b.booking_id} on connector {a.connector_id}"
        for items in live.values()
        for a in items
        if a.booking_id in fleet
        for b in items
        if b.booking_id != a.booking_id and overlaps(a.starts_at, a.ends_at, b.starts_at, b.ends_at)
    ]
    return _result(
        "fleet_bookings_overlap_nothing", "no fleet booking overlaps another booking", len(fleet), failures
    )


def fleet_bookings_on_account(s: Snapshot) -> InvariantResult:
    """A block occurrence is never held or charged on a card: what it costs goes on account."""
    fleet = {o.booking_id for o in s.fleet_occurrences}
    card = {EntryKind.HOLD, EntryKind.CAPTURE}
    failures = [
        f"fleet booking {e.booking_id}: {e.kind} entry {e.entry_id}"
        for e in s.entries
        if e.booking_id in fleet and e.kind in card
    ]
    return _result(
        "fleet_bookings_on_account",
        "fleet bookings are charged on account, never to a card",
        len(fleet),
        failures,
    )


def export_credit_matches_export(s: Snapshot) -> InvariantResult:
    """Per V2G booking: the credit is the export register's Wh x the export price (rounded down to
    the penny), and the ledger credited the driver exactly that (no credit without terms). Late
    stops' credits name register spans that follow each other up to the record's reading, each paid
    what it adds: the grid statement's Wh for a booking are the record's, for its credit."""
    terms = {t.booking_id: t for t in s.export_terms}
    credited: dict[int, int] = defaultdict(int)
    for e in s.entries:
        if e.kind in EXPORT_CREDIT_KINDS and e.booking_id is not None:
            credited[e.booking_id] += e.amount
    spans: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for e in s.entries:
        if e.kind in EXPORT_CREDIT_KINDS and e.booking_id is not None:
            span = late_export_span(e.entry_id)
            if span is not None:
                spans[e.booking_id].append((*span, e.amount))
    failures = [
        f"booking {b}: export credited {c}p without export terms"
        for b, c in credited.items()
        if b not in terms
    ]
    checked = 0
    for r in s.export_records:
        if not r.settled:
            continue
        checked += 1
        t = terms.get(r.booking_id)
        due = 0 if t is None else export_credit(r.metered_wh, t.price_per_kwh)
        if r.exported_wh != r.metered_wh or r.credit != due or credited.get(r.booking_id, 0) != due:
            failures.append(
                f"booking {r.booking_id}: exported {r.exported_wh} Wh (register {r.metered_wh} Wh), "
                f"credit {r.credit}p, ledger {credited.get(r.booking_id, 0)}p, due {due}p"
            )
        elif r.booking_id in spans and t is not None:
            failures += _late_lines_disagree(r, sorted(spans[r.booking_id]), t.price_per_kwh)
    return _result(
        "export_credit_matches_export",
        "V2G credit = exported Wh x export price (rounded down), as the ledger credits it",
        checked,
        failures,
    )


def _late_lines_disagree(r: ExportRecord, spans: list[tuple[int, int, int]], price: int) -> list[str]:
    """The grid statement's lines for a booking's late credits (each gives its span's Wh): the spans
    follow each other up to the record's reading, and each is paid what its Wh add to the credit,
    at least a penny, so the statement's Wh add up to the record's for the same pence."""
    assert r.start_wh is not None
    failures, reading = [], spans[0][0]
    for first, last, amount in spans:
        adds = export_credit(last - r.start_wh, price) - export_credit(first - r.start_wh, price)
        if first != reading or amount != adds or amount <= 0:
            failures.append(
                f"booking {r.booking_id}: late credit {first}-{last} Wh of {amount}p "
                f"(after {reading} Wh, adds {adds}p)"
            )
        reading = last
    if reading != r.last_wh:
        failures.append(f"booking {r.booking_id}: late credits end at {reading} Wh, record at {r.last_wh} Wh")
    return failures


def export_charged_to_one_buyer(s: Snapshot) -> InvariantResult:
    """Per V2G booking: every export credit charges one buyer, the same for the whole booking: a
    grid credit the grid buyer, a home credit the payable of the host whose booking it is."""
    hosts = {b.booking_id: b.host_id for b in s.bookings}
    buyers: dict[int, set[str]] = defaultdict(set)
    failures = []
    for e in s.entries:
        if e.kind not in EXPORT_CREDIT_KINDS or e.booking_id is None:
            continue
        account = export_buyer_account(e)
        host = hosts.get(e.booking_id)
        due = GRID_EXPORT_BUYER if e.kind is EntryKind.EXPORT_CREDIT else None
        if e.kind is EntryKind.HOME_EXPORT_CREDIT and host is not None:
            due = host_payable(host)
        if account is None or account != due:
            failures.append(f"{e.kind} entry {e.entry_id}: charges {account}, not {due}")
        buyers[e.booking_id].add(str(account))
    failures += [
        f"booking {b}: export charged to {', '.join(sorted(accounts))}"
        for b, accounts in sorted(buyers.items())
        if len(accounts) > 1
    ]
    return _result(
        "export_charged_to_one_buyer",
        "each V2G booking's export is charged to one buyer: the grid buyer or its host's home",
        len(buyers),
        failures,
    )


def export_payouts_within_credits(s: Snapshot) -> InvariantResult:
    """Per driver: what was paid out of their export credit account never exceeds what it was
    credited, and nothing else moves money in or out of it."""
    credited: dict[str, int] = defaultdict(int)
    paid: dict[str, int] = defaultdict(int)
    failures = []
    for e in s.entries:
        for p in e.postings:
            if export_credit_driver(p.account) is None:
                continue
            if e.kind in EXPORT_CREDIT_KINDS:
                credited[p.account] -= p.amount
            elif e.kind is EntryKind.EXPORT_PAYOUT:
                paid[p.account] += p.amount
            else:
                failures.append(f"{p.account}: moved by {e.kind} entry {e.entry_id}")
    failures += [f"{a}: paid {paid[a]}p of {credited[a]}p credited" for a in paid if paid[a] > credited[a]]
    return _result(
        "export_payouts_within_credits",
        "drivers' V2G export payouts never exceed their export credits",
        len(credited),
        failures,
    )


def grid_buyer_owes_unsettled_exports(s: Snapshot) -> InvariantResult:
    """The grid buyer's account moves only by export credits and settlements; each settled month's
    payment is its statement (the credits written in that month) and one ledger entry named by the
    month; so what the buyer owes is every credit of a month not settled yet."""
    failures = [
        f"{GRID_EXPORT_BUYER}: moved by {e.kind} entry {e.entry_id}"
        for e in s.entries
        if e.kind not in (EntryKind.EXPORT_CREDIT, EntryKind.GRID_SETTLEMENT)
        and any(p.account == GRID_EXPORT_BUYER for p in e.postings)
    ]
    paid = {e.entry_id: e for e in s.entries if e.kind is EntryKind.GRID_SETTLEMENT}
    settled = {g.entry_id: g for g in s.grid_settlements}
    credited: dict[str, int] = defaultdict(int)  # by UK month, as a statement groups them
    for e in s.entries:
        if e.kind is EntryKind.EXPORT_CREDIT:
            credited[month_of(e.created_at)] += buyer_movement([e])
    for g in s.grid_settlements:
        entry = paid.get(g.entry_id)
        if entry is None or settled_month(g.entry_id) != g.month or -buyer_movement([entry]) != g.amount:
            failures.append(f"{g.month}: settled for {g.amount}p; ledger entry {g.entry_id} missing or other")
        if credited[g.month] != g.amount:
            failures.append(
                f"{g.month}: settled for {g.amount}p, its export credits come to {credited[g.month]}p"
            )
    failures += [f"settlement entry {eid} names no settled month" for eid in paid if eid not in settled]
    return _result(
        "grid_buyer_owes_unsettled_exports",
        "grid buyer's settlements = its months' export credits, each paid once in the ledger",
        len(s.grid_settlements),
        failures,
    )


def export_above_soc_floor(s: Snapshot) -> InvariantResult:
    """No car reported a state of charge below its driver's floor while it was exporting."""
    floors = {t.booking_id: t.soc_floor_pct for t in s.export_terms}
    failures = [
        f"booking {r.booking_id}: state of charge {r.lowest_soc_pct}% while exporting, "
        f"floor {floors[r.booking_id]}%"
        for r in s.export_records
        if r.lowest_soc_pct is not None and r.booking_id in floors and r.lowest_soc_pct < floors[r.booking_id]
    ]
    return _result(
        "export_above_soc_floor",
        "a V2G car's state of charge never below the driver's floor while exporting",
        len(s.export_records),
        failures,
    )


def registers_apart(s: Snapshot, measured: Mapping[int, tuple[int, int]]) -> InvariantResult:
    """Against the chargers' own registers (booking id -> (import Wh, export Wh) each delivered):
    import is billed from the import register and export credited from the export register, neither
    netted off the other."""
    sessions = {x.booking_id: x for x in s.sessions if x.status is SessionStatus.STOPPED}
    records = {r.booking_id: r for r in s.export_records}
    failures = []
    for booking_id, (import_wh, export_wh) in sorted(measured.items()):
        session = sessions.get(booking_id)
        record = records.get(booking_id)
        billed = None if session is None else session.billed_wh
        exported = 0 if record is None or record.exported_wh is None else record.exported_wh
        if billed != import_wh or exported != export_wh:
            failures.append(
                f"booking {booking_id}: billed {billed} Wh of {import_wh} imported, "
                f"credited {exported} Wh of {export_wh} exported"
            )
    return _result(
        "import_export_registers_apart",
        "import billed from the import register, export credited from the export register",
        len(measured),
        failures,
    )


CHECKS: tuple[Callable[[Snapshot], InvariantResult], ...] = (
    no_overlapping_bookings,
    journal_balanced,
    captured_equals_metered_cost,
    capture_matches_quote,
    cost_split,
    capture_within_hold,
    hold_resolved_at_most_once,
    holds_within_lifetime,
    processor_fees_recorded,
    payouts_within_earnings,
    billed_energy_matches_meter,
    late_stops_unbilled_once,
    no_stale_placement,
    one_settlement_per_stopped_session,
    one_close_per_unused_booking,
    fleet_receivable_is_invoiced_less_paid,
    fleet_bookings_overlap_nothing,
    fleet_bookings_on_account,
    export_credit_matches_export,
    export_charged_to_one_buyer,
    export_payouts_within_credits,
    grid_buyer_owes_unsettled_exports,
    export_above_soc_floor,
)
FINAL_CHECKS: tuple[Callable[[Snapshot], InvariantResult], ...] = (
    every_hold_ended,
    no_open_sessions,
    no_reservation_held_after_booking_ended,
)


def grid_within_limits(
    samples: Mapping[tuple[Scope, int], Sequence[LoadSample]], meter_interval: timedelta
) -> InvariantResult:
    """No site or feeder drew more than its limit (flexibility events included) for longer than one
    meter interval: the time a new limit takes to be decided, sent, obeyed and measured."""
    failures = [
        f"{o.scope.value} {o.target_id} drew up to {o.peak_w} W over its {o.limit_w} W limit "
        f"from {o.starts_at.isoformat()} to {o.ends_at.isoformat()}"
        for o in overloads(samples, meter_interval)
    ]
    return _result(
        "grid_within_limits",
        "no site or feeder above its limit for longer than one meter interval",
        sum(len(v) for v in samples.values()),
        failures,
    )


def check_snapshot(s: Snapshot, *, final: bool = True) -> list[InvariantResult]:
    """Run every check; `final` adds those that only hold once a run has wound down."""
    return [check(s) for check in CHECKS + (FINAL_CHECKS if final else ())]


def check_store(
    store: Store, rules: MarketplaceRules, *, now: datetime | None = None, final: bool = True
) -> list[InvariantResult]:
    return read_and_check(store, rules, now=now, final=final)[1]


def read_and_check(
    store: Store, rules: MarketplaceRules, *, now: datetime | None = None, final: bool = True
) -> tuple[Snapshot | None, list[InvariantResult]]:
    """`check_store`, also giving the snapshot it checked (None if the journal could not be loaded),
    for a report that needs the same rows: at fleet scale, reading them twice was seconds."""
    with store.transaction() as tx:
        try:
            snapshot = Snapshot.read(tx, rules, now)
        except LedgerError as exc:  # an entry so broken it cannot even be loaded
            sums = tx.ledger.posting_sums()
            bad = [f"{eid} sums to {v}" for eid, v in sums.items() if v != 0] or [str(exc)]
            name, what = "journal_balanced", "every journal entry's postings sum to zero"
            return None, [_result(name, what, len(sums), bad)]
    return snapshot, check_snapshot(snapshot, final=final)
