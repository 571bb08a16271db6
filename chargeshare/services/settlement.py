"""The payments saga for one booking: hold, then capture-and-split or release, through an outbox.

Every gateway step is first written to the payments outbox (in its own committed transaction) and
then executed; its idempotency key is derived from the booking and the step, so a retry, a crash
between the gateway call and the ledger write, or a second worker can never charge twice. Failed
steps are retried with exponential backoff and dead-lettered after `payment_max_attempts`;
`reconcile()` puts dead letters back once the provider has recovered. Charging never waits for it.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from chargeshare.domain import ledger
from chargeshare.domain.errors import LedgerError, PaymentDeclined, PaymentUnavailable
from chargeshare.domain.ledger import EntryKind, JournalEntry
from chargeshare.domain.money import split_fee
from chargeshare.services.clock import Clock
from chargeshare.services.events import InProcessBus, SessionSettled
from chargeshare.services.ports import (
    GatewayFailure,
    HoldExpired,
    HoldResult,
    PaymentGateway,
    Store,
    UnitOfWork,
)
from chargeshare.services.records import OutboxItem
from chargeshare.services.rules import MarketplaceRules

log = logging.getLogger(__name__)

PENDING, DONE, DEAD = "pending", "done", "dead"
CAPTURE, FEE, RELEASE, CHARGE, VOID_AUTH = "capture", "fee", "release", "charge", "void_auth"
TOPUP = "topup"  # the part of a cost beyond its hold (a fast charger overshooting the booked energy)
FRESH_CHARGES = (CHARGE, TOPUP)  # steps that authorise and capture anew, with no booking hold
RECONCILE_ROUNDS = 10


@dataclass
class OutboxRun:
    done: int = 0
    retried: int = 0
    dead: int = 0


def _key(booking_id: int, step: str) -> str:
    return f"booking:{booking_id}:{step}"


class SettlementService:
    def __init__(
        self, store: Store, gateway: PaymentGateway, bus: InProcessBus, clock: Clock, rules: MarketplaceRules
    ) -> None:
        self.store, self.gateway, self.bus, self.clock, self.rules = store, gateway, bus, clock, rules

    # ---- the hold: synchronous, because the booking needs the answer -----------------------------
    def place_hold(self, booking_id: int, driver_id: int, amount: int) -> HoldResult:
        """Authorise the card. Raises PaymentDeclined, or PaymentUnavailable on an outage (after
        queueing a compensation that voids the authorisation if the provider did make one)."""
        key = _key(booking_id, "hold")
        try:
            result = self.gateway.authorize(
                amount=amount, customer=f"driver:{driver_id}", idempotency_key=key
            )
        except GatewayFailure as exc:
            with self.store.transaction() as tx:
                tx.outbox.enqueue(
                    booking_id, VOID_AUTH, amount, _key(booking_id, VOID_AUTH), self.clock.now()
                )
            raise PaymentUnavailable(f"the payment provider is unavailable: {exc}") from exc
        if not result.approved:
            raise PaymentDeclined(result.reason or "card declined")
        return result

    def hold_entry(self, booking_id: int, driver_id: int, amount: int) -> JournalEntry:
        return ledger.place_hold(f"b{booking_id}:hold", booking_id, driver_id, amount, self.clock.now())

    # ---- what ends a booking: queued, then attempted at once ----------------------------------
    def settle(self, booking_id: int) -> None:
        """Capture the stopped session's exact cost and split it. Asking twice queues it once."""
        with self.store.transaction() as tx:
            session = tx.sessions.for_booking(booking_id)
            if session is None or session.cost is None:
                raise LedgerError(f"booking {booking_id} has no stopped session to settle")
            tx.outbox.enqueue(booking_id, CAPTURE, session.cost, _key(booking_id, CAPTURE), self.clock.now())
        self.process_booking(booking_id)

    def close_unused(self, booking_id: int, fee: int) -> None:
        """A booking that ended without charging: capture its fee (no-show, late cancel), or release."""
        if fee > 0:
            with self.store.transaction() as tx:
                tx.outbox.enqueue(booking_id, FEE, fee, _key(booking_id, FEE), self.clock.now())
            self.process_booking(booking_id)
        else:
            self.release(booking_id)

    def release(self, booking_id: int) -> None:
        """Return the whole hold to the driver (cancel, no-show without fee, failure)."""
        with self.store.transaction() as tx:
            tx.outbox.enqueue(booking_id, RELEASE, 0, _key(booking_id, RELEASE), self.clock.now())
        self.process_booking(booking_id)

    # ---- the outbox worker ---------------------------------------------------------------------
    def process_booking(self, booking_id: int) -> None:
        with self.store.transaction() as tx:
            items = tx.outbox.pending_of(booking_id)
        for item in items:
            self._attempt(item)

    def process_due(self, limit: int = 100) -> OutboxRun:
        with self.store.transaction() as tx:
            items = tx.outbox.due(self.clock.now(), limit)
        return self._work(items, OutboxRun())

    def reconcile(self) -> OutboxRun:
        """Give dead letters a fresh set of attempts and work the backlog off now (bounded rounds)."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            for item in tx.outbox.all(DEAD):
                tx.outbox.update(
                    item.item_id, status=PENDING, attempts=0, next_attempt_at=now, last_error=None
                )
        total = OutboxRun()
        for _ in range(RECONCILE_ROUNDS):
            with self.store.transaction() as tx:
                pending = tx.outbox.all(PENDING)
            if not pending:
                break
            self._work(pending, total)
        return total

    def _work(self, items: Sequence[OutboxItem], run: OutboxRun) -> OutboxRun:
        for item in items:
            status = self._attempt(item)
            run.done += status == DONE
            run.retried += status == PENDING
            run.dead += status == DEAD
        return run

    def _attempt(self, item: OutboxItem) -> str:
        try:
            self._execute(item)
        except (GatewayFailure, LedgerError) as exc:
            return self._failed(item, exc)
        return DONE

    def _failed(self, item: OutboxItem, exc: Exception) -> str:
        attempts = item.attempts + 1
        status = DEAD if attempts >= self.rules.payment_max_attempts else PENDING
        backoff = min(self.rules.payment_backoff_s * 2 ** (attempts - 1), self.rules.payment_backoff_cap_s)
        jitter = zlib.crc32(item.idempotency_key.encode()) % max(
            1, backoff // 4
        )  # spread retries, reproducibly
        with self.store.transaction() as tx:
            tx.outbox.update(
                item.item_id,
                status=status,
                attempts=attempts,
                next_attempt_at=self.clock.now() + timedelta(seconds=backoff + jitter),
                last_error=f"{type(exc).__name__}: {exc}",
            )
        log.warning("payment step %s failed (attempt %s): %s", item.idempotency_key, attempts, exc)
        return status

    def _done(
        self, tx: UnitOfWork, item: OutboxItem, entries: list[JournalEntry], note: str | None = None
    ) -> None:
        existing = {e.entry_id for e in tx.ledger.entries(item.booking_id)}
        tx.ledger.add([e for e in entries if e.entry_id not in existing])
        now = self.clock.now()
        tx.outbox.update(
            item.item_id,
            status=DONE,
            attempts=item.attempts + 1,
            next_attempt_at=now,
            last_error=note,
            done_at=now,
        )

    def _execute(self, item: OutboxItem) -> None:
        with self.store.transaction() as tx:
            booking = tx.bookings.get(item.booking_id)
            entries = list(tx.ledger.entries(item.booking_id))
        hold = ledger.open_hold(entries)
        now = self.clock.now()
        if item.step == VOID_AUTH:
            # Replaying the hold's key returns the authorisation if the provider made one; void it.
            result = self.gateway.authorize(
                amount=item.amount,
                customer=f"driver:{booking.driver_id}",
                idempotency_key=_key(item.booking_id, "hold"),
            )
            if result.approved:
                self.gateway.release(reference=result.reference, idempotency_key=item.idempotency_key)
            with self.store.transaction() as tx:
                self._done(tx, item, [])
            return
        reference = booking.payment_ref
        if item.step in FRESH_CHARGES:
            hold, reference = self._charge_afresh(item, booking.driver_id, entries)
        if hold is None or reference is None:
            raise LedgerError(f"booking {item.booking_id} has no open hold for {item.step}")
        if item.step == RELEASE:
            kind = EntryKind.VOID
            try:
                self.gateway.release(reference=reference, idempotency_key=item.idempotency_key)
            except HoldExpired:
                kind = EntryKind.EXPIRE  # it lapsed by itself: nothing left to release
            void = ledger.void_hold(
                hold, entries, void_id=f"b{item.booking_id}:{kind.value}", at=now, kind=kind
            )
            with self.store.transaction() as tx:
                self._done(tx, item, [void])
            return
        # Capture what the hold covers; anything beyond it is charged afresh as a top-up.
        amount = min(item.amount, hold.amount)
        capture, split = ledger.capture_and_split(
            hold,
            entries,
            capture_id=f"b{item.booking_id}:{item.step}",
            split_id=f"b{item.booking_id}:{item.step}-split",
            amount=amount,
            split=split_fee(amount, self.rules.platform_fee_bps, self.rules.vat_bps),
            host_id=booking.host_id,
            at=now,
        )
        try:
            self.gateway.capture(
                reference=reference,
                amount=amount,
                idempotency_key=_key(item.booking_id, f"{item.step}-capture"),
            )
        except HoldExpired:
            self._hold_lapsed(item, hold, entries)
            return
        fee = ledger.processor_fee(
            f"b{item.booking_id}:{item.step}-processing",
            item.booking_id,
            self.rules.processor_fee(amount),
            now,
        )
        with self.store.transaction() as tx:
            if item.amount > amount:
                tx.outbox.enqueue(
                    item.booking_id, TOPUP, item.amount - amount, _key(item.booking_id, TOPUP), now
                )
            self._done(tx, item, [capture, split] if fee is None else [capture, split, fee])
        if item.amount > amount:
            self.process_booking(item.booking_id)
        if item.step in (CAPTURE, CHARGE):  # CHARGE: the capture made afresh after a lapsed hold
            with self.store.transaction() as tx:
                session = tx.sessions.for_booking(item.booking_id)
            if session is not None:
                self.bus.publish(SessionSettled(now, session.session_id, item.booking_id, item.amount))

    def _hold_lapsed(self, item: OutboxItem, hold: JournalEntry, entries: list[JournalEntry]) -> None:
        """The authorisation expired before capture: record the lapse and charge the card afresh."""
        expire = ledger.void_hold(
            hold, entries, void_id=f"b{item.booking_id}:expire", at=self.clock.now(), kind=EntryKind.EXPIRE
        )
        with self.store.transaction() as tx:
            tx.outbox.enqueue(
                item.booking_id, CHARGE, item.amount, _key(item.booking_id, CHARGE), self.clock.now()
            )
            self._done(tx, item, [expire], note="hold expired before capture; charging the card afresh")
        self.process_booking(item.booking_id)

    def _charge_afresh(
        self, item: OutboxItem, driver_id: int, entries: list[JournalEntry]
    ) -> tuple[JournalEntry, str]:
        """A new authorisation for exactly the amount owed, then captured as usual (same item)."""
        result = self.gateway.authorize(
            amount=item.amount, customer=f"driver:{driver_id}", idempotency_key=f"{item.idempotency_key}:hold"
        )
        if not result.approved:
            raise LedgerError(f"card declined when charging afresh: {result.reason}; collect manually")
        hold_id = f"b{item.booking_id}:{item.step}-hold"
        hold = next((e for e in entries if e.entry_id == hold_id), None)
        if hold is None:
            hold = ledger.place_hold(hold_id, item.booking_id, driver_id, item.amount, self.clock.now())
            with self.store.transaction() as tx:
                tx.ledger.add([hold])
            entries.append(hold)
        return hold, result.reference

    # ---- payouts -------------------------------------------------------------------------------
    def pay_out_hosts(self) -> PayoutRun:
        """Pay every host whose KYC checks are verified their payable balance (in the ledger; the
        provider's transfers are the destination charges themselves). Others are skipped, with why."""
        now = self.clock.now()
        run = PayoutRun()
        with self.store.transaction() as tx:
            verified = tx.accounts.verified_hosts()
            balances = ledger.posted_balances(tx.ledger.entries())
            for account, balance in sorted(balances.items()):
                if not (account.startswith("host:") and balance < 0):
                    continue
                host_id = int(account.split(":")[1])
                if host_id not in verified:
                    run.skipped[host_id] = (-balance, "KYC not verified: payouts wait for verification")
                    continue
                entry_id = f"payout:{host_id}:{now.isoformat()}"
                tx.ledger.add([ledger.payout(entry_id, host_id, -balance, now)])
                run.paid[host_id] = -balance
        for host_id, (pence, why) in run.skipped.items():
            log.info("payout of %s pence to host %s skipped: %s", pence, host_id, why)
        return run


@dataclass
class PayoutRun:
    paid: dict[int, int] = field(default_factory=dict)  # host id -> pence paid
    skipped: dict[int, tuple[int, str]] = field(default_factory=dict)  # host id -> (pence owed, why)
