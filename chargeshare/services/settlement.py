"""Money for one booking: place the hold, capture the exact metered cost and split it, or release."""

from __future__ import annotations

import logging

from chargeshare.domain import ledger
from chargeshare.domain.errors import LedgerError, PaymentDeclined
from chargeshare.domain.ledger import EntryKind, JournalEntry
from chargeshare.domain.money import split_fee
from chargeshare.services.clock import Clock
from chargeshare.services.events import InProcessBus, SessionSettled
from chargeshare.services.ports import HoldResult, PaymentGateway, Store
from chargeshare.services.rules import MarketplaceRules

log = logging.getLogger(__name__)


def _hold_of(entries: list[JournalEntry] | tuple[JournalEntry, ...]) -> JournalEntry | None:
    return next((e for e in entries if e.kind is EntryKind.HOLD), None)


class SettlementService:
    def __init__(
        self, store: Store, gateway: PaymentGateway, bus: InProcessBus, clock: Clock, rules: MarketplaceRules
    ) -> None:
        self.store, self.gateway, self.bus, self.clock, self.rules = store, gateway, bus, clock, rules

    def place_hold(self, booking_id: int, driver_id: int, amount: int) -> HoldResult:
        """Authorise the card and record the pending hold. Raises PaymentDeclined."""
        result = self.gateway.authorize(
            amount=amount, customer=f"driver:{driver_id}", idempotency_key=f"booking:{booking_id}:hold"
        )
        if not result.approved:
            raise PaymentDeclined(result.reason or "card declined")
        return result

    def hold_entry(self, booking_id: int, driver_id: int, amount: int) -> JournalEntry:
        return ledger.place_hold(f"b{booking_id}:hold", booking_id, driver_id, amount, self.clock.now())

    def settle(self, booking_id: int) -> None:
        """Capture the stopped session's exact cost and split it. Safe to call again: it does nothing."""
        with self.store.transaction() as tx:
            session = tx.session_for_booking(booking_id)
        if session is None or session.cost is None:
            raise LedgerError(f"booking {booking_id} has no stopped session to settle")
        if self._capture(booking_id, session.cost):
            self.bus.publish(SessionSettled(self.clock.now(), session.session_id, booking_id, session.cost))

    def close_unused(self, booking_id: int, fee: int) -> None:
        """A booking that ended without charging: capture its fee (no-show, late cancel), or release."""
        if fee > 0:
            self._capture(booking_id, fee)
        else:
            self.release(booking_id)

    def _capture(self, booking_id: int, amount: int) -> bool:
        """Capture `amount` of the booking's hold and split it; False if the hold was already resolved."""
        with self.store.transaction() as tx:
            booking = tx.booking(booking_id)
            entries = tuple(tx.entries(booking_id))
        hold = _hold_of(entries)
        if hold is None or booking.payment_ref is None:
            raise LedgerError(f"booking {booking_id} has no hold to capture")
        if any(e.pending_id == hold.entry_id for e in entries):
            return False  # already settled: a duplicate stop or a retry
        capture, split_entry = ledger.capture_and_split(
            hold,
            entries,
            capture_id=f"b{booking_id}:capture",
            split_id=f"b{booking_id}:split",
            amount=amount,
            split=split_fee(amount, self.rules.platform_fee_bps),
            host_id=booking.host_id,
            at=self.clock.now(),
        )
        self.gateway.capture(
            reference=booking.payment_ref, amount=amount, idempotency_key=f"booking:{booking_id}:capture"
        )
        with self.store.transaction() as tx:
            tx.add_entries([capture, split_entry])
        return True

    def release(self, booking_id: int) -> None:
        """Return the whole hold to the driver (cancel, no-show, failure). Idempotent."""
        with self.store.transaction() as tx:
            booking = tx.booking(booking_id)
            entries = tuple(tx.entries(booking_id))
        hold = _hold_of(entries)
        if hold is None or any(e.pending_id == hold.entry_id for e in entries):
            return
        void = ledger.void_hold(hold, entries, void_id=f"b{booking_id}:void", at=self.clock.now())
        if booking.payment_ref is not None:
            self.gateway.release(
                reference=booking.payment_ref, idempotency_key=f"booking:{booking_id}:release"
            )
        with self.store.transaction() as tx:
            tx.add_entries([void])
