"""V2G export on OCPP 2.1 (chargeshare/domain/v2g.py): a driver's export terms for a booking, the
export register metered apart from import, and the credit posted with the session's stop.

When a session starts on a booking with export terms at a 2.1 charger, `ExportDue` asks the
command policy to allow the bidirectional transfer (NotifyAllowedEnergyTransfer) and to send a
TxProfile that discharges at the connector's rating in the peak hours within the booking (the
windows a grid buyer pays for). The car itself keeps the driver's floor; the backend records the
lowest state of charge reported while exporting, and the invariants hold it to the floor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from chargeshare.domain.accounts import Principal, Role
from chargeshare.domain.command_backoff import Backoff, OwedKind, Refusals
from chargeshare.domain.errors import Forbidden, InvalidRequest, InvalidTransition, NotFound
from chargeshare.domain.ledger import JournalEntry, export_credit_entry, home_export_credit_entry
from chargeshare.domain.smart_charge_points import peak_periods
from chargeshare.domain.v2g import (
    ExportBuyer,
    ExportRecord,
    ExportTerms,
    read_export,
    settle_export,
    settle_late_export,
)
from chargeshare.ocpp import V21
from chargeshare.services.clock import Clock
from chargeshare.services.events import ExportDue, MessageBus, SessionStarted
from chargeshare.services.owed_commands import not_given_up, record_refusal, record_unanswered
from chargeshare.services.ports import Store, UnitOfWork
from chargeshare.services.queries.tenancy import can_see
from chargeshare.services.records import BookingRecord, ChargerView, ConnectorView

V2G_VERSION = V21  # bidirectional transfer is OCPP 2.1's
ENDED = frozenset({"completed", "cancelled", "expired", "failed"})


def export_entry_id(booking_id: int) -> str:
    return f"export-{booking_id}"


def late_export_entry_id(booking_id: int, from_wh: int, to_wh: int) -> str:
    """A late stop's credit for the export register from `from_wh` (the reading credited before) to
    `to_wh`: one id per span, so the same reading credits once."""
    return f"export-{booking_id}:{from_wh}-{to_wh}"


def late_export_span(entry_id: str) -> tuple[int, int] | None:
    """The register span a late stop's credit names (`late_export_entry_id`); None for another id."""
    _, sep, span = entry_id.partition(":")
    first, dash, last = span.partition("-")
    if not (entry_id.startswith("export-") and sep and dash and first.isdigit() and last.isdigit()):
        return None
    return int(first), int(last)


@dataclass(frozen=True)
class ExportView:
    booking_id: int
    terms: ExportTerms | None
    record: ExportRecord
    # How often the session's charger refused its export permission or profile, and when it is
    # asked again (given up: no retry); None while it has refused nothing since it last accepted.
    refusals: Refusals | None = None


def _new_record(tx: UnitOfWork, booking_id: int) -> ExportRecord:
    """A booking's first export record, with its buyer: the host's choice now, fixed from here on
    (the store keeps the buyer a record was first written with), so a host changing its mind
    mid-session never splits a session's export between two buyers."""
    host_id = tx.bookings.get(booking_id).host_id
    return ExportRecord(booking_id, buyer=tx.v2g.host_buyer(host_id))


def export_entry(
    entry_id: str, record: ExportRecord, booking: BookingRecord, amount: int, at: datetime
) -> JournalEntry:
    """The ledger entry crediting the driver `amount` of the booking's export, charged to the
    record's buyer: the grid buyer, or the host's payable when its home buys it."""
    if record.buyer is ExportBuyer.HOME:
        return home_export_credit_entry(
            entry_id, booking.booking_id, booking.driver_id, booking.host_id, amount, at
        )
    return export_credit_entry(entry_id, booking.booking_id, booking.driver_id, amount, at)


def _buyer_taken(tx: UnitOfWork, record: ExportRecord, booking: BookingRecord, clock: Clock) -> datetime:
    """When a credit of the record is dated: now, once its buyer is held. A home's purchase debits
    the host's payable: it takes the host's row first, as a payout does, so a payout reads the
    balance after it rather than paying it out; and a payout that committed first is dated first."""
    if record.buyer is ExportBuyer.HOME:
        tx.accounts.lock_host(booking.host_id)
    return clock.now()


def record_export(
    tx: UnitOfWork, booking_id: int, register_wh: int | None, soc_pct: int | None, at: datetime
) -> None:
    """A reading of the export register (and the car's state of charge) for a booking's session;
    kept only for a booking with export terms (a plain car's readings need no record). The first
    reading kept fixes the buyer (`_new_record`). The booking's export is held before the record is
    read: two readings at once on two processes take turns, so the first to commit is the start and
    the other applies on top of it, never moving the start nor taking the register back."""
    if tx.v2g.terms(booking_id) is None:
        return
    tx.v2g.lock_export(booking_id)
    before = tx.v2g.record(booking_id) or _new_record(tx, booking_id)
    after = read_export(before, register_wh, soc_pct)
    if after != before:
        tx.v2g.save_record(after, at)


def credit_export(tx: UnitOfWork, booking: BookingRecord, clock: Clock) -> ExportRecord | None:
    """At the session's stop, in its unit of work: the export settled and, if any, credited. Dated
    once its turn on the grid buyer's statements is taken: a payment recorded before is for a
    month already over then, so the credit is on a later statement, never on a paid one (and a
    home's purchase once it holds the host's row: `_buyer_taken`)."""
    if tx.v2g.terms(booking.booking_id) is None:
        return None
    tx.v2g.settling(exclusive=False)
    # A reading committing meanwhile is in the credit, not written back over by the settled record;
    # a change of terms committing meanwhile is the price (read again under the lock, which
    # `set_terms` takes too), never one replaced once the record is settled on the old.
    tx.v2g.lock_export(booking.booking_id)
    terms = tx.v2g.terms(booking.booking_id)
    if terms is None:
        return None
    record = tx.v2g.record(booking.booking_id) or _new_record(tx, booking.booking_id)
    if record.settled:
        return record
    settled = settle_export(record, terms)
    at = _buyer_taken(tx, settled, booking, clock) if settled.credit else clock.now()
    tx.v2g.save_record(settled, at)
    if settled.credit:
        entry = export_entry(export_entry_id(booking.booking_id), settled, booking, settled.credit, at)
        tx.ledger.add([entry])
    return settled


@dataclass(frozen=True)
class LateCredit:
    """What a late stop's export reading credited: Wh and pence, and the Wh above the credited
    reading left for a later reading because they are worth less than a penny yet."""

    wh: int = 0
    pence: int = 0
    below_a_penny_wh: int = 0


def credit_late_export(tx: UnitOfWork, booking: BookingRecord, register_wh: int, clock: Clock) -> LateCredit:
    """A late stop's export reading, credited with its session's rebill in its unit of work: the
    record settled at the close is taken up to it (compare-and-set on the reading credited then)
    and the difference in credit posted, dated as `credit_export` dates one. Returns the Wh taken
    up and the pence added: none when nothing is above the credited reading or another stop took
    it first. Export worth less than a penny so far is not taken up: the record stays on what was
    paid for, so every Wh it credits has its ledger line, and a later reading takes the rest."""
    terms = tx.v2g.terms(booking.booking_id)
    if terms is None:
        return LateCredit()
    tx.v2g.settling(exclusive=False)
    record = tx.v2g.record(booking.booking_id)
    if record is None or record.last_wh is None or record.credit is None:
        return LateCredit()
    later = settle_late_export(record, register_wh, terms)
    assert later.credit is not None
    added = later.credit - record.credit
    if not added:
        return LateCredit(below_a_penny_wh=max(0, register_wh - record.last_wh))
    at = _buyer_taken(tx, record, booking, clock)
    if not tx.v2g.resettle_record(later, at, last_wh=record.last_wh):
        return LateCredit()
    entry_id = late_export_entry_id(booking.booking_id, record.last_wh, register_wh)
    tx.ledger.add([export_entry(entry_id, record, booking, added, at)])
    return LateCredit(register_wh - record.last_wh, added)


def late_export(tx: UnitOfWork, booking_id: int, register_wh: int | None) -> tuple[int, int] | None:
    """A late stop's export reading against the record its session's close settled: the Wh above
    the reading credited and their credit at the driver's price; None when it is not above it (or
    the booking exports nothing)."""
    if register_wh is None:
        return None
    terms = tx.v2g.terms(booking_id)
    record = None if terms is None else tx.v2g.record(booking_id)
    if terms is None or record is None or record.credit is None or record.last_wh is None:
        return None
    later = settle_late_export(record, register_wh, terms)
    if later == record:
        return None
    assert later.credit is not None
    return register_wh - record.last_wh, later.credit - record.credit


Windows = Callable[[datetime, datetime], list[tuple[datetime, datetime]]]


class V2gService:
    def __init__(
        self,
        store: Store,
        bus: MessageBus,
        clock: Clock,
        windows: Windows = peak_periods,
        backoff: Backoff | None = None,
    ) -> None:
        """`windows`: when a grid buyer takes export, as (from, to) overlapping a span (peak hours).
        `backoff`: how a charger refusing its export is asked again."""
        self.store, self.bus, self.clock = store, bus, clock
        self.windows = windows
        self.backoff = backoff or Backoff()
        bus.subscribe(SessionStarted, self._on_session_started)

    def set_terms(
        self, who: Principal, booking_id: int, price_per_kwh: int, soc_floor_pct: int
    ) -> ExportTerms:
        """The booking's driver sets (or changes) its terms, before its export is settled. Another
        driver's booking is NotFound; terms change nothing on a session already running."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            if who.role is not Role.DRIVER or not can_see(who, tx.bookings.get(booking_id)):
                raise NotFound(f"no booking {booking_id}")  # before any lock: nobody else's row held
            # The booking's row, which the stop changes before it settles, then the terms: a stop
            # meanwhile commits first and the change is refused (ended), or waits and credits at
            # it; a first change has no terms row to hold, so the booking's is what orders it.
            tx.bookings.lock(booking_id)
            tx.v2g.lock_export(booking_id)
            booking = tx.bookings.get(booking_id)
            record = tx.v2g.record(booking_id)
            if str(booking.status) in ENDED or (record is not None and record.settled):
                raise InvalidTransition(f"booking {booking_id} has ended: its export terms are fixed")
            terms = ExportTerms(booking_id, price_per_kwh, soc_floor_pct, now)
            tx.v2g.set_terms(terms)
        return terms

    def export(self, who: Principal, booking_id: int) -> ExportView:
        """The booking's terms and export as metered, for its driver, its host or an admin."""
        with self.store.reading() as tx:
            booking = tx.bookings.get(booking_id)
            if not can_see(who, booking):
                raise NotFound(f"no booking {booking_id}")
            terms = tx.v2g.terms(booking_id)
            record = tx.v2g.record(booking_id) or ExportRecord(booking_id)
            session = tx.sessions.for_booking(booking_id)
            refused = None
            if session is not None:
                refused = tx.refusals.of(OwedKind.EXPORT, [session.session_id]).get(session.session_id)
        return ExportView(booking_id, terms, record, refused)

    def buyer(self, who: Principal) -> ExportBuyer:
        """Who buys the export of the calling host's chargers' guests (default the grid buyer)."""
        return self.buyer_of(self._host_of(who))

    def buyer_of(self, host_id: int) -> ExportBuyer:
        """The same for a named host (an operator, from the shell)."""
        with self.store.reading() as tx:
            return tx.v2g.host_buyer(host_id)

    def set_buyer(self, who: Principal, buyer: str) -> ExportBuyer:
        """The calling host chooses who buys its guests' export from the next export that starts:
        one already started keeps the buyer its record was first kept with."""
        return self.set_buyer_for(self._host_of(who), buyer)

    def set_buyer_for(self, host_id: int, buyer: str) -> ExportBuyer:
        """The same for a named host (an operator, from the shell); NotFound for an unknown host."""
        try:
            chosen = ExportBuyer(buyer)
        except ValueError:
            raise InvalidRequest(f"an export buyer is grid or home, got {buyer!r}") from None
        with self.store.transaction() as tx:
            tx.v2g.set_host_buyer(host_id, chosen, self.clock.now())
        return chosen

    @staticmethod
    def _host_of(who: Principal) -> int:
        if who.role is not Role.HOST or who.host_id is None:
            raise Forbidden("only a host chooses who buys its guests' export")
        return who.host_id

    def _on_session_started(self, event: SessionStarted) -> None:
        with self.store.reading() as tx:
            if tx.v2g.terms(event.booking_id) is None:
                return
            cp_id = tx.sessions.charger_of(event.session_id)
            session = tx.sessions.get(event.session_id)
            charger = None if cp_id is None else tx.chargers.get(cp_id)
            booking = tx.bookings.get(event.booking_id)
        if charger is None or session is None or charger.ocpp_version != V2G_VERSION:
            return
        connector = next(c for c in charger.connectors if c.connector_id == session.connector_id)
        self.bus.publish(self._export_due(charger, connector, event.session_id, booking, event.at))

    def exports_due(self, charge_point_id: str) -> list[ExportDue]:
        """The export permissions and profiles a 2.1 charger holds for its running V2G sessions: sent
        again when it connects, since it may have lost the link before the profile, refused it, or
        rebooted. NotFound for an unregistered charger."""
        with self.store.reading() as tx:
            return self.exports_due_in(tx, tx.chargers.get(charge_point_id))

    def exports_due_in(self, tx: UnitOfWork, charger: ChargerView) -> list[ExportDue]:
        """The same, read in the caller's unit of work (see `owed_commands.due_at_connect`), with
        the windows still ahead from now; none the charger refused too often."""
        if charger.ocpp_version != V2G_VERSION:
            return []
        now = self.clock.now()
        running = []
        for connector in charger.connectors:
            session = tx.sessions.open_on(connector.connector_id)
            if session is not None and tx.v2g.terms(session.booking_id) is not None:
                running.append((connector, session))
        askable = not_given_up(tx, OwedKind.EXPORT, [s.session_id for _, s in running])
        return [
            self._export_due(charger, c, s.session_id, tx.bookings.get(s.booking_id), now)
            for c, s in running
            if s.session_id in askable
        ]

    def export_taken(self, session_id: int) -> None:
        """The session's charger took its export permission and profile: no longer owed to the
        sweep (still sent on connecting, in case the charger lost it), and its refusals forgotten."""
        with self.store.transaction() as tx:
            session = tx.sessions.get(session_id)
            if session is not None:
                tx.v2g.export_taken(session.booking_id, session_id)
                tx.refusals.clear(session_id, OwedKind.EXPORT)

    def export_refused(self, session_id: int) -> Refusals | None:
        """The session's charger refused its export permission or profile: asked again on the
        back-off, or never again for the session once it gives up."""
        return record_refusal(self.store, self.backoff, OwedKind.EXPORT, session_id, self.clock.now())

    def export_unanswered(self, session_id: int) -> Refusals | None:
        """A send of the session's export went unanswered: asked again on the back-off, for as
        long as it is owed."""
        return record_unanswered(self.store, self.backoff, OwedKind.EXPORT, session_id, self.clock.now())

    def _export_due(
        self,
        charger: ChargerView,
        connector: ConnectorView,
        session_id: int,
        booking: BookingRecord,
        at: datetime,
    ) -> ExportDue:
        """Discharge in the windows that overlap the booking from `at` on, as seconds after `at`."""
        start, end = max(at, booking.starts_at), booking.ends_at
        windows = tuple(
            (int((max(a, start) - at).total_seconds()), int((min(b, end) - at).total_seconds()))
            for a, b in self.windows(start, end)
            if min(b, end) > max(a, start)
        )
        return ExportDue(
            at, charger.charge_point_id, connector.connector_no, session_id, connector.max_power_w, windows
        )
