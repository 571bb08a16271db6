"""Fleet-share hubs: a business account books recurring blocks on hosts' chargers and pays on account.

A block is booked all or nothing: every occurrence on every connector is written in one unit of
work, each an ordinary booking (the database refuses an overlap as it does a driver's), or none
is and the refusal names each occurrence that clashes. Sessions under a block settle to the
fleet's account instead of a card (`settlement`); a month's charges become one invoice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from chargeshare.domain.availability import WeeklyWindow, covers
from chargeshare.domain.booking import BookingStatus, check_period
from chargeshare.domain.charger import BootPolicy
from chargeshare.domain.errors import (
    BookingConflict,
    IdempotencyKeyReused,
    InvalidField,
    InvalidRequest,
    NotFound,
)
from chargeshare.domain.fleet import (
    BlockRule,
    ContractPolicy,
    FleetAccount,
    FleetContract,
    Invoice,
    InvoiceLine,
    IssuedInvoice,
    LineKind,
    SeenRequest,
    invoice_for,
    month_end,
    overlapping,
    parse_month,
)
from chargeshare.domain.fleet_ledger import (
    fleet_receivable,
    fleet_unbilled,
    host_penalty,
    invoice_entry,
    payment_entry,
)
from chargeshare.domain.ledger import EntryKind
from chargeshare.domain.tariff import Tariff
from chargeshare.failpoints import failpoint
from chargeshare.services.clock import Clock
from chargeshare.services.events import BookingConfirmed, MessageBus
from chargeshare.services.ports import Store, UnitOfWork
from chargeshare.services.records import BookingRecord
from chargeshare.services.rules import MarketplaceRules

# Most occurrences named in one refusal: enough to act on, bounded for a year-long contract.
MAX_CONFLICTS_NAMED = 50


@dataclass(frozen=True)
class Clash:
    """An occurrence a block cannot have: its connector, period, and why."""

    charger_id: int
    connector_no: int
    starts_at: datetime
    ends_at: datetime
    reason: str  # "booked" | "unavailable"


class BlockConflict(BookingConflict):
    """Some occurrences of a block clash with bookings or the host's calendar: nothing was booked."""

    code = "block_conflict"

    def __init__(self, clashes: Sequence[Clash], total: int) -> None:
        super().__init__(
            f"{total} occurrence(s) of the block clash with existing bookings or the hosts' calendars; "
            "nothing was booked"
        )
        self.clashes = tuple(clashes[:MAX_CONFLICTS_NAMED])
        self.total = total


@dataclass(frozen=True)
class ConnectorRef:
    charger_id: int
    connector_no: int


@dataclass(frozen=True)
class _Target:
    ref: ConnectorRef
    connector_id: int
    price_per_kwh: int
    calendar: list[WeeklyWindow]


@dataclass(frozen=True)
class BookedBlock:
    contract: FleetContract
    bookings: tuple[BookingRecord, ...]


@dataclass(frozen=True)
class IssuedWithLines:
    invoice: IssuedInvoice
    lines: tuple[InvoiceLine, ...]


@dataclass(frozen=True)
class FleetStatement:
    fleet: FleetAccount
    invoices: tuple[IssuedInvoice, ...]
    unbilled: int  # charged on account (less penalties credited), not yet invoiced
    receivable: int  # invoiced, not yet paid

    @property
    def balance(self) -> int:
        return self.unbilled + self.receivable


def penalty_for_host_cancel(tx: UnitOfWork, booking: BookingRecord, now: datetime) -> None:
    """A host cancelling a fleet's block occurrence pays what the contract says, in the same unit of
    work as the cancellation (whichever route cancels it). Other bookings: nothing."""
    occurrence = tx.fleet.occurrence(booking.booking_id)
    if occurrence is None:
        return
    policy = tx.fleet.contract(occurrence.contract_id).policy
    amount = policy.host_cancellation_penalty(now, booking.starts_at)
    if amount > 0:
        entry = host_penalty(
            f"b{booking.booking_id}:penalty",
            booking_id=booking.booking_id,
            host_id=booking.host_id,
            fleet_id=occurrence.fleet_id,
            amount=amount,
            at=now,
        )
        tx.ledger.add([entry])


class FleetService:
    def __init__(self, store: Store, bus: MessageBus, clock: Clock, rules: MarketplaceRules) -> None:
        self.store, self.bus, self.clock, self.rules = store, bus, clock, rules

    # ---- accounts -----------------------------------------------------------------------------
    def create_account(self, name: str, id_tag: str) -> FleetAccount:
        """A fleet whose vehicles charge with `id_tag` (a driver of its own, so its sessions start
        as any driver's do)."""
        if not name.strip():
            raise InvalidField("name", "must not be empty")
        with self.store.transaction() as tx:
            if tx.accounts.driver_by_tag(id_tag) is not None:
                raise InvalidField("id_tag", "is taken")
            driver_id = tx.accounts.add_driver(name, id_tag)
            fleet_id = tx.fleet.add_account(name, driver_id, self.clock.now())
            return tx.fleet.account(fleet_id)

    def account(self, fleet_id: int) -> FleetAccount:
        with self.store.reading() as tx:
            return tx.fleet.account(fleet_id)

    def accounts(self) -> Sequence[FleetAccount]:
        with self.store.reading() as tx:
            return tx.fleet.accounts()

    # ---- blocks -------------------------------------------------------------------------------
    def book_block(
        self,
        fleet_id: int,
        rule: BlockRule,
        connectors: Sequence[ConnectorRef],
        policy: ContractPolicy | None = None,
        *,
        max_energy_wh: int | None = None,
        request_key: str | None = None,
    ) -> BookedBlock:
        """Book every occurrence of `rule` on every connector, all or nothing (BlockConflict names
        the clashes). Each occurrence is a confirmed booking of the fleet's driver, paid on account.

        With a `request_key` (the client's Idempotency-Key), the same block sent again answers with
        the contract the first made and books nothing more; IdempotencyKeyReused for another."""
        if not connectors:
            raise InvalidField("connectors", "name at least one charger connector")
        energy = self.rules.max_energy_wh if max_energy_wh is None else max_energy_wh
        if not 0 < energy <= self.rules.max_energy_wh:
            raise InvalidField("max_energy_wh", f"must be between 1 and {self.rules.max_energy_wh}")
        policy = policy or ContractPolicy()
        periods = rule.occurrences()
        now = self.clock.now()
        if not periods:
            raise InvalidField("weekdays", "the rule has no occurrence in its date range")
        if periods[0][0] <= now:
            raise InvalidField("first_day", "a block must start in the future")
        for start, end in periods:
            check_period(start, end)
        # A digest of the whole request: a key reused with any field changed, however long, is refused.
        asked = repr((rule, tuple(dict.fromkeys(connectors)), policy, energy))
        fingerprint = hashlib.sha256(asked.encode()).hexdigest()
        with self.store.transaction() as tx:
            fleet = tx.fleet.account(fleet_id)
            if request_key is not None and not tx.fleet.claim_request(
                fleet_id, BLOCK, request_key, fingerprint, now
            ):
                seen = _seen(tx, fleet_id, BLOCK, request_key, fingerprint)
                assert seen.ref_id is not None
                contract = tx.fleet.contract(seen.ref_id)
                made = sorted(o.booking_id for o in tx.fleet.occurrences(contract_id=seen.ref_id))
                return BookedBlock(contract, tuple(tx.bookings.get(b) for b in made))  # as made
            targets = [self._target(tx, ref) for ref in dict.fromkeys(connectors)]
            clashes = []
            for target in targets:
                ref = target.ref
                taken = tx.bookings.held_periods(target.connector_id, periods[0][0])
                booked = set(overlapping(periods, taken))
                for n, (start, end) in enumerate(periods):
                    if n in booked:
                        clashes.append(Clash(ref.charger_id, ref.connector_no, start, end, "booked"))
                    elif not covers(target.calendar, start, end):
                        clashes.append(Clash(ref.charger_id, ref.connector_no, start, end, "unavailable"))
            if clashes:
                raise BlockConflict(clashes, len(clashes))
            contract_id = tx.fleet.add_contract(
                fleet_id, rule, policy, [t.connector_id for t in targets], now
            )
            made = []
            for target in targets:
                ref = target.ref
                hold = Tariff(target.price_per_kwh).cost(self.rules.hold_energy(energy))
                for start, end in periods:
                    try:
                        booking_id = tx.bookings.add(
                            driver_id=fleet.driver_id,
                            connector_id=target.connector_id,
                            starts_at=start,
                            ends_at=end,
                            max_energy_wh=energy,
                            price_per_kwh=target.price_per_kwh,
                            # No card is held: this is the most the occurrence may cost on account.
                            hold_amount=hold,
                            created_at=now,
                            fencing_token=None,
                        )
                    except BookingConflict:  # a booking got in since the check: still all or nothing
                        clash = Clash(ref.charger_id, ref.connector_no, start, end, "booked")
                        raise BlockConflict([clash], 1) from None
                    tx.bookings.update(booking_id, BookingStatus.CONFIRMED, expected=BookingStatus.REQUESTED)
                    tx.fleet.add_occurrence(booking_id, contract_id, fleet_id)
                    made.append(booking_id)
            contract = tx.fleet.contract(contract_id)
            records = tuple(tx.bookings.get(b) for b in made)
            if request_key is not None:
                tx.fleet.answer_request(fleet_id, BLOCK, request_key, contract_id, None)
        for b in records:
            self.bus.publish(BookingConfirmed(now, b.booking_id, b.driver_id))
        return BookedBlock(contract, records)

    def _target(self, tx: UnitOfWork, ref: ConnectorRef) -> _Target:
        view = tx.chargers.by_id(ref.charger_id)
        connector = next((c for c in view.connectors if c.connector_no == ref.connector_no), None)
        if connector is None:
            raise NotFound(f"charger {ref.charger_id} has no connector {ref.connector_no}")
        if view.boot_policy is not BootPolicy.ACCEPTED:
            raise InvalidRequest(f"charger {ref.charger_id} is not in service: its host has not accepted it")
        if view.price_per_kwh <= 0:
            raise InvalidRequest(f"charger {ref.charger_id} is free; free chargers are not supported yet")
        calendar = tx.chargers.availability([ref.charger_id]).get(ref.charger_id, [])
        return _Target(ref, connector.connector_id, view.price_per_kwh, calendar)

    def occurrences(self, fleet_id: int, *, contract_id: int | None = None) -> list[BookingRecord]:
        """The fleet's block bookings (of one contract if given), by start."""
        with self.store.reading() as tx:
            tx.fleet.account(fleet_id)
            found = tx.fleet.occurrences(fleet_id=fleet_id, contract_id=contract_id)
            records = [tx.bookings.get(o.booking_id) for o in found]
        return sorted(records, key=lambda b: (b.starts_at, b.booking_id))

    def contracts(self, fleet_id: int) -> Sequence[FleetContract]:
        with self.store.reading() as tx:
            tx.fleet.account(fleet_id)
            return tx.fleet.contracts_of(fleet_id)

    # ---- invoices -----------------------------------------------------------------------------
    def _unbilled_lines(self, tx: UnitOfWork, fleet_id: int) -> list[InvoiceLine]:
        ids = [o.booking_id for o in tx.fleet.occurrences(fleet_id=fleet_id)]
        billed = tx.fleet.billed_entries(fleet_id)
        sessions = tx.sessions.for_bookings(ids)
        lines = []
        for booking_id, entries in tx.ledger.entries_of(ids).items():
            for e in entries:
                if e.entry_id in billed:
                    continue
                if e.kind is EntryKind.ON_ACCOUNT:
                    session = sessions.get(booking_id)
                    is_session = e.entry_id.endswith(":capture") and session is not None
                    kind = LineKind.SESSION if is_session else LineKind.FEE
                    energy = (session.billed_wh or 0) if is_session and session is not None else 0
                    lines.append(InvoiceLine(e.entry_id, booking_id, kind, e.created_at, e.amount, energy))
                elif e.kind is EntryKind.FLEET_PENALTY:
                    lines.append(
                        InvoiceLine(e.entry_id, booking_id, LineKind.PENALTY, e.created_at, -e.amount)
                    )
        return lines

    def invoice(self, fleet_id: int, month: str) -> IssuedWithLines:
        """Issue the month's invoice (UK calendar month, once it is over); asking again for a month
        already issued answers with that invoice and changes nothing."""
        parse_month(month)
        now = self.clock.now()
        if now < month_end(month):
            raise InvalidField("month", f"{month} is not over yet")
        made = False
        with self.store.transaction() as tx:
            tx.fleet.account(fleet_id)
            issued = tx.fleet.invoice(fleet_id, month)
            if issued is None:
                drafted: Invoice = invoice_for(fleet_id, month, self._unbilled_lines(tx, fleet_id))
                invoice_id = tx.fleet.add_invoice(fleet_id, month, drafted.lines, drafted.total, now)
                made = invoice_id is not None
                if invoice_id is not None:
                    entry = invoice_entry(
                        f"f{fleet_id}:{month}:invoice", fleet_id=fleet_id, total=drafted.total, at=now
                    )
                    if entry is not None:
                        tx.ledger.add([entry])
                issued = tx.fleet.invoice(fleet_id, month)
            if issued is None:  # refused: another process issued it, or billed a line, meanwhile
                raise InvalidRequest(f"the invoice for {month} changed meanwhile; ask again")
            answer = IssuedWithLines(issued, tuple(tx.fleet.lines_of(issued.invoice_id)))
        if made:
            failpoint("invoice-issued")
        return answer

    def invoices(self, fleet_id: int) -> Sequence[IssuedInvoice]:
        with self.store.reading() as tx:
            tx.fleet.account(fleet_id)
            return tx.fleet.invoices(fleet_id)

    def invoice_lines(self, fleet_id: int, month: str) -> IssuedWithLines:
        with self.store.reading() as tx:
            issued = tx.fleet.invoice(fleet_id, month)
            if issued is None:
                raise NotFound(f"no invoice for {month}")
            return IssuedWithLines(issued, tuple(tx.fleet.lines_of(issued.invoice_id)))

    def pay(self, fleet_id: int, month: str, amount: int, *, request_key: str | None = None) -> IssuedInvoice:
        """Record `amount` paid against the month's invoice (at most what is outstanding).

        With a `request_key` (the client's Idempotency-Key), the same payment sent again answers as
        the first did and records nothing more; IdempotencyKeyReused if the key was for another."""
        if amount <= 0:
            raise InvalidField("amount", "must be positive")
        now = self.clock.now()
        fingerprint = f"{month}:{amount}"
        with self.store.transaction() as tx:
            tx.fleet.account(fleet_id)  # NotFound before a key is claimed for no fleet
            # Claimed first, in the same unit of work: a copy waits on the key, then finds it taken.
            if request_key is not None and not tx.fleet.claim_request(
                fleet_id, PAYMENT, request_key, fingerprint, now
            ):
                return _paid_as_first(tx, fleet_id, request_key, fingerprint)
            issued = tx.fleet.invoice(fleet_id, month)
            if issued is None:
                raise NotFound(f"no invoice for {month}")
            if amount > issued.outstanding:
                raise InvalidField("amount", f"is more than the {issued.outstanding}p outstanding")
            paid = issued.paid + amount
            if not tx.fleet.record_payment(issued.invoice_id, paid, now, expected=issued.paid):
                raise InvalidRequest("the invoice was paid meanwhile; look at it again")
            # Named by what has been paid after it: a payment recorded twice is refused above.
            entry = payment_entry(
                f"f{fleet_id}:{month}:paid:{paid}", fleet_id=fleet_id, amount=amount, at=now
            )
            assert entry is not None
            tx.ledger.add([entry])
            found = tx.fleet.invoice(fleet_id, month)
            assert found is not None
            if request_key is not None:
                tx.fleet.answer_request(fleet_id, PAYMENT, request_key, found.invoice_id, found.paid)
        failpoint("fleet-payment-recorded")
        return found

    def statement(self, fleet_id: int) -> FleetStatement:
        with self.store.reading() as tx:
            fleet = tx.fleet.account(fleet_id)
            invoices = tuple(tx.fleet.invoices(fleet_id))
            unbilled = _balance(tx, fleet_unbilled(fleet_id))
            receivable = _balance(tx, fleet_receivable(fleet_id))
        return FleetStatement(fleet, invoices, unbilled, receivable)


PAYMENT, BLOCK = "payment", "block"  # the kinds of fleet request an Idempotency-Key names


def _seen(tx: UnitOfWork, fleet_id: int, kind: str, key: str, fingerprint: str) -> SeenRequest:
    seen = tx.fleet.request_seen(fleet_id, kind, key)
    assert seen is not None, "claimed by a request committed before"
    if seen.fingerprint != fingerprint:
        raise IdempotencyKeyReused(f"this Idempotency-Key was used for a different {kind} request")
    return seen


def _paid_as_first(tx: UnitOfWork, fleet_id: int, key: str, fingerprint: str) -> IssuedInvoice:
    """The invoice as the first payment under this key answered it."""
    seen = _seen(tx, fleet_id, PAYMENT, key, fingerprint)
    assert seen.ref_id is not None and seen.value is not None
    found = next(i for i in tx.fleet.invoices(fleet_id) if i.invoice_id == seen.ref_id)
    return replace(found, paid=seen.value, paid_at=seen.made_at)


def _balance(tx: UnitOfWork, account: str) -> int:
    return sum(
        p.amount for e in tx.ledger.entries(account=account) for p in e.postings if p.account == account
    )
