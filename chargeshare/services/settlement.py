"""The payments saga for one booking: hold, then capture-and-split or release, through an outbox.

Every gateway step is a row of the payments outbox, written in the same unit of work as the state
change that calls for it (a session's stop queues its capture; a cancellation its fee or release),
so a crash can lose neither. A hold's placement is recorded before the provider is asked. Each step
is worked by one worker at a time, which claims it with a lease; its idempotency key is derived from
the booking and the step, so a retry, a crash between the gateway call and the ledger write, or a
second worker taking over a lapsed lease never charges twice, and the ledger skips an entry it has.
Failed steps are retried with exponential backoff and dead-lettered after `payment_max_attempts`;
`reconcile()` puts dead letters back once the provider has recovered.

Who works the steps: by default the caller, right after its unit of work commits (tests, the DES, the
CLI); a server hands them to a background worker instead (`on_queued`), so nothing waits on the
provider on the OCPP event loop.
"""

from __future__ import annotations

import itertools
import logging
import os
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from chargeshare.domain import ledger
from chargeshare.domain.accounts import KycStatus
from chargeshare.domain.booking import BookingEvent, BookingStatus, is_walk_in, next_status
from chargeshare.domain.errors import (
    ConcurrentChange,
    DomainError,
    LedgerError,
    PaymentDeclined,
    PaymentUnavailable,
)
from chargeshare.domain.fleet_ledger import charge_on_account
from chargeshare.domain.ledger import EntryKind, JournalEntry
from chargeshare.domain.money import split_fee
from chargeshare.failpoints import failpoint
from chargeshare.services.clock import Clock
from chargeshare.services.events import MessageBus, SessionSettled
from chargeshare.services.ports import (
    GatewayFailure,
    HoldExpired,
    HoldResult,
    PaymentGateway,
    Store,
    UnitOfWork,
)
from chargeshare.services.records import BookingRecord, OutboxItem
from chargeshare.services.rules import MarketplaceRules

log = logging.getLogger(__name__)

PENDING, DONE, DEAD = "pending", "done", "dead"
DECLINED = "declined"  # the placement's outcome when the card said no
HOLD = "hold"  # a placement in flight: finished by the booking request, or voided by recovery
CAPTURE, FEE, RELEASE, CHARGE, VOID_AUTH = "capture", "fee", "release", "charge", "void_auth"
TOPUP = "topup"  # the part of a cost beyond its hold (a fast charger overshooting the booked energy)
FRESH_CHARGES = (CHARGE, TOPUP)  # steps that authorise and capture anew, with no booking hold
RECONCILE_ROUNDS = 10
DUE_BATCH = 100
EXPORT_WITHHELD = "payout details not verified (KYC): the credit stays owed"
HOST_WITHHELD = "KYC not verified: payouts wait for verification"
LAPSED = "claim lapsed: taken back by reconcile"


@dataclass
class OutboxRun:
    done: int = 0
    retried: int = 0
    dead: int = 0
    lost: int = 0  # steps whose claim lapsed before they finished: another worker has them


class LostClaim(Exception):
    """This worker's lease on a step ran out and another took it: its outcome must not be written."""


class ChargeDeclined(LedgerError):
    """The card declined a step's fresh authorisation: retried (under a new key) like any failure."""


class ChargeLapsed(LedgerError):
    """A step's fresh authorisation lapsed before its capture: the lapse is recorded with the retry,
    which authorises afresh under a new key (counted as a decline is)."""

    def __init__(self, message: str, expire: JournalEntry) -> None:
        super().__init__(message)
        self.expire = expire


@dataclass(frozen=True)
class Placement:
    """How asking the provider for a booking's hold went."""

    result: HoldResult | None  # None: the provider could not be reached
    error: str = ""


def _claim_of(item: OutboxItem) -> str:
    assert item.claimed_by is not None, "a step is worked only under a claim"
    return item.claimed_by


def _key(booking_id: int, step: str) -> str:
    return f"booking:{booking_id}:{step}"


def capture_key(booking_id: int) -> str:
    """The idempotency key of a stopped session's capture step."""
    return _key(booking_id, CAPTURE)


def _authorisation_key(item: OutboxItem) -> str:
    """The key of a step's fresh authorisation (a walk-in's capture, a charge after a lapsed hold, a
    top-up). An exact repeat of an attempt (a retry after a failed capture, a worker taking over a
    lapsed lease) asks under the same key, so the provider answers with the authorisation it made;
    each decline recorded makes the next attempt a new request, so it is decided afresh rather than
    replayed (a provider keeps a declined request's answer under its key, as it keeps an approval).
    A lapse is counted as a decline: the lapsed authorisation's key would replay it, lapsed."""
    return _nth(f"{item.idempotency_key}:hold", item)


def _capture_key(item: OutboxItem, entries: Sequence[JournalEntry]) -> str:
    """The key of a step's capture: after each lapse of its own fresh authorisation, the next one is
    captured under a key of its own (the lapsed one was refused under the previous key, and a
    provider keeps that answer). Lapses are counted from the ledger's expiries of the step's holds,
    not from declines, which never reach a capture: a step whose card declined once keeps the key
    it may already have captured under."""
    base = _key(item.booking_id, f"{item.step}-capture")
    holds = {e.entry_id for e in _step_holds(item, entries)}
    lapses = sum(1 for e in entries if e.kind is EntryKind.EXPIRE and e.pending_id in holds)
    return base if lapses == 0 else f"{base}:{lapses + 1}"


def _step_holds(item: OutboxItem, entries: Sequence[JournalEntry]) -> list[JournalEntry]:
    """The holds a step placed for its own fresh authorisations: `b<booking>:<step>-hold`, then
    `...-hold:2` and on after each lapse."""
    base = f"b{item.booking_id}:{item.step}-hold"
    return [e for e in entries if e.kind is EntryKind.HOLD and f"{e.entry_id}:".startswith(f"{base}:")]


def _nth(base: str, item: OutboxItem) -> str:
    return base if item.declines == 0 else f"{base}:{item.declines + 1}"


def worker_name() -> str:
    """Unique per process and start; each claim adds a number of its own (`_claim`)."""
    return f"{os.uname().nodename[:24]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class SettlementService:
    def __init__(
        self,
        store: Store,
        gateway: PaymentGateway,
        bus: MessageBus,
        clock: Clock,
        rules: MarketplaceRules,
        *,
        worker: str | None = None,
    ) -> None:
        self.store, self.gateway, self.bus, self.clock, self.rules = store, gateway, bus, clock, rules
        self.worker = worker or worker_name()
        self._claims = itertools.count(1)
        # Called with a booking id once steps are queued for it; None: work them at once, here.
        self.on_queued: Callable[[int], None] | None = None

    def _claim(self) -> str:
        """A name for one claim: finishing a step needs the very claim that took it, so a request
        thread and a worker thread of one process (or a worker whose lease lapsed and was taken over)
        can never finish each other's claims."""
        return f"{self.worker}/{next(self._claims)}"

    def _lease(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.rules.payment_lease_s)

    # ---- the hold: the booking waits for its answer -----------------------------------------------
    def record_placement(self, tx: UnitOfWork, booking_id: int, amount: int) -> str:
        """In the booking's own unit of work: the placement, under its idempotency key, claimed until
        the placement timeout; returns the claim `finish_placement` needs. If the request dies or takes
        longer, recovery (`process_due`) takes the placement over and voids whatever the provider
        authorised, and the claim can no longer finish it."""
        now = self.clock.now()
        timeout = now + timedelta(seconds=self.rules.hold_placement_timeout_s)
        claim = self._claim()
        tx.outbox.enqueue(
            booking_id, HOLD, amount, _key(booking_id, HOLD), now, due_at=timeout, claimed_by=claim
        )
        return claim

    def authorize(self, booking_id: int, driver_id: int, amount: int) -> Placement:
        try:
            result = self.gateway.authorize(
                amount=amount, customer=f"driver:{driver_id}", idempotency_key=_key(booking_id, HOLD)
            )
        except GatewayFailure as exc:
            return Placement(None, str(exc))
        return Placement(result)

    def finish_placement(
        self, booking_id: int, driver_id: int, amount: int, placement: Placement, claim: str
    ) -> BookingRecord:
        """Confirm the booking with its hold in the ledger, or fail it (declined, or the provider
        unreachable: then voiding whatever it may have authorised is queued). Raises PaymentDeclined
        or PaymentUnavailable for the refused ones, after their unit of work has committed."""
        now = self.clock.now()
        result = placement.result
        with self.store.transaction() as tx:
            item = tx.outbox.get(_key(booking_id, HOLD))
            assert item is not None, "a placement is recorded before the provider is asked"
            done = tx.outbox.finish(
                item.item_id,
                claim,
                status=DONE,
                attempts=1,
                next_attempt_at=now,
                last_error=None if result is not None and result.approved else (placement.error or DECLINED),
                done_at=now,
                reference=None if result is None else result.reference,
            )
            if not done:  # recovery has taken the placement over (we were too slow): it voids it
                raise PaymentUnavailable("the payment provider took too long to answer; nothing was booked")
            approved = result is not None and result.approved
            if result is not None and approved:
                confirmed = next_status(BookingStatus.REQUESTED, BookingEvent.HOLD_PLACED)
                if tx.bookings.update(
                    booking_id, confirmed, payment_ref=result.reference, expected=BookingStatus.REQUESTED
                ):
                    tx.ledger.add(
                        [ledger.place_hold(f"b{booking_id}:hold", booking_id, driver_id, amount, now)]
                    )
                    return tx.bookings.get(booking_id)
            else:
                failed = next_status(BookingStatus.REQUESTED, BookingEvent.HOLD_DECLINED)
                tx.bookings.update(booking_id, failed, expected=BookingStatus.REQUESTED)
            if result is None or approved:  # unheard, or cancelled while the provider was asked
                tx.outbox.enqueue(booking_id, VOID_AUTH, amount, _key(booking_id, VOID_AUTH), now)
        if result is None or approved:
            self.queued(booking_id)
        if result is None:
            raise PaymentUnavailable(f"the payment provider is unavailable: {placement.error}")
        if approved:
            raise ConcurrentChange(f"booking {booking_id} was cancelled while its hold was placed")
        raise PaymentDeclined(result.reason or "card declined")

    def placement_refusal(self, booking_id: int) -> DomainError:
        """Why a failed booking's hold was not placed, as its request answered (or would have, had
        it lived): declined by the card, or the provider not heard in time."""
        with self.store.reading() as tx:
            item = tx.outbox.get(_key(booking_id, HOLD))
        if item is not None and item.last_error == DECLINED:
            return PaymentDeclined("card declined")
        return PaymentUnavailable("the payment provider could not place the card hold; nothing was booked")

    # ---- what ends a booking: queued with the state change, worked after it commits ---------------
    def queue_capture(self, tx: UnitOfWork, booking_id: int, cost: int) -> None:
        """The stopped session's exact cost, captured and split. Asking twice queues it once."""
        tx.outbox.enqueue(booking_id, CAPTURE, cost, _key(booking_id, CAPTURE), self.clock.now())

    def reprice_capture(self, tx: UnitOfWork, booking_id: int, cost: int) -> bool:
        """Make a queued capture the session's corrected cost, only while no worker has ever
        claimed it (no gateway call went out under its key: no attempt, no claim and no error, which
        a dead letter or a lapsed claim that reconcile revives keeps). False, changing nothing,
        otherwise."""
        return tx.outbox.reprice_unworked(capture_key(booking_id), cost)

    def queue_close(self, tx: UnitOfWork, booking_id: int, fee: int) -> None:
        """A booking that ended without charging: capture its fee (no-show, late cancel), or release."""
        if fee > 0:
            tx.outbox.enqueue(booking_id, FEE, fee, _key(booking_id, FEE), self.clock.now())
        else:
            self.queue_release(tx, booking_id)

    def queue_release(self, tx: UnitOfWork, booking_id: int) -> None:
        """Return the whole hold to the driver (cancel, no-show without fee, refusal)."""
        tx.outbox.enqueue(booking_id, RELEASE, 0, _key(booking_id, RELEASE), self.clock.now())

    def queued(self, booking_id: int) -> None:
        """Steps were queued for this booking (and committed): work them, here or in the background."""
        if self.on_queued is not None:
            self.on_queued(booking_id)
            return
        try:
            self.process_booking(booking_id)
        except Exception:
            # The steps are durable in the outbox; the sweep retries them.
            log.exception("payment steps of booking %s failed; the outbox keeps them", booking_id)

    # ---- the outbox worker ---------------------------------------------------------------------
    def process_booking(self, booking_id: int) -> OutboxRun:
        """Work one booking's pending steps now, whether due or not (those nobody else holds)."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            items = tx.outbox.claim_of(booking_id, now, self._claim(), self._lease(now))
        return self._work(items, OutboxRun())

    def process_due(self, limit: int = DUE_BATCH) -> OutboxRun:
        """Claim and work up to `limit` steps that are due, including placements whose request died.
        Each is claimed just before it is worked, on a lease of its own, so no step waits here
        behind slow ones while its lease lapses and another worker takes it."""
        run = OutboxRun()
        for _ in range(limit):
            now = self.clock.now()
            with self.store.transaction() as tx:
                items = tx.outbox.claim_due(now, 1, self._claim(), self._lease(now))
            if not items:
                break
            self._work(items, run)
        return run

    def reconcile(self) -> OutboxRun:
        """Give dead letters a fresh set of attempts and work the backlog off now (bounded rounds)."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            for item in [*tx.outbox.all(DEAD), *tx.outbox.all(PENDING)]:
                if item.claimed_by is None or (item.lease_until is not None and item.lease_until <= now):
                    attempts = 0 if item.status == DEAD else item.attempts
                    # A lapsed claim may have reached the provider: its trace stays (reprice_capture).
                    lapsed = item.claimed_by is not None and item.last_error is None
                    # Only as read: a worker elsewhere may have finished or claimed it since.
                    tx.outbox.update(
                        item.item_id,
                        expected=item.status,
                        expected_attempts=item.attempts,
                        now=now,
                        status=PENDING,
                        attempts=attempts,
                        next_attempt_at=now,
                        last_error=LAPSED if lapsed else item.last_error,
                    )
        total = OutboxRun()
        for _ in range(RECONCILE_ROUNDS):
            run = self.process_due(limit=10_000)
            total.done, total.retried, total.dead, total.lost = (
                total.done + run.done,
                total.retried + run.retried,
                total.dead + run.dead,
                total.lost + run.lost,
            )
            if not (run.done or run.retried or run.dead):
                break
            with self.store.transaction() as tx:  # retries are due again at once: this is the operator asking
                for item in tx.outbox.all(PENDING):
                    if item.claimed_by is None:
                        tx.outbox.update(
                            item.item_id,
                            expected=PENDING,
                            expected_attempts=item.attempts,
                            now=self.clock.now(),
                            status=PENDING,
                            attempts=item.attempts,
                            next_attempt_at=self.clock.now(),
                            last_error=item.last_error,
                        )
        return total

    def _work(self, items: Sequence[OutboxItem], run: OutboxRun) -> OutboxRun:
        for item in items:
            status = self._attempt(item)
            run.done += status == DONE
            run.retried += status == PENDING
            run.dead += status == DEAD
            run.lost += status == "lost"
        return run

    def _attempt(self, item: OutboxItem) -> str:
        try:
            self._execute(item)
        except LostClaim:
            log.warning("payment step %s: lease lapsed, another worker has it", item.idempotency_key)
            return "lost"
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
            if not tx.outbox.finish(
                item.item_id,
                _claim_of(item),
                status=status,
                attempts=attempts,
                next_attempt_at=self.clock.now() + timedelta(seconds=backoff + jitter),
                last_error=f"{type(exc).__name__}: {exc}",
                declined=isinstance(exc, (ChargeDeclined, ChargeLapsed)),
            ):
                return "lost"
            if isinstance(exc, ChargeLapsed):
                tx.ledger.add([exc.expire])
        log.warning("payment step %s failed (attempt %s): %s", item.idempotency_key, attempts, exc)
        return status

    def _done(
        self,
        tx: UnitOfWork,
        item: OutboxItem,
        entries: list[JournalEntry],
        note: str | None = None,
        reference: str | None = None,
    ) -> None:
        """Write the step's entries and mark it done, in the caller's unit of work; LostClaim (which
        rolls that unit back) if the lease lapsed meanwhile."""
        now = self.clock.now()
        if not tx.outbox.finish(
            item.item_id,
            _claim_of(item),
            status=DONE,
            attempts=item.attempts + 1,
            next_attempt_at=now,
            last_error=note,
            done_at=now,
            reference=reference,
        ):
            raise LostClaim(item.idempotency_key)
        tx.ledger.add(entries)

    def _execute(self, item: OutboxItem) -> None:
        with self.store.reading() as tx:
            booking = tx.bookings.get(item.booking_id)
            entries = list(tx.ledger.entries(item.booking_id))
            occurrence = tx.fleet.occurrence(item.booking_id)
        if occurrence is not None:
            self._on_account(item, booking, occurrence.fleet_id)
            return
        if item.step in (HOLD, VOID_AUTH):
            self._void_placement(item, booking)
            return
        hold = ledger.open_hold(entries)
        now = self.clock.now()
        reference = booking.payment_ref
        walk_in = is_walk_in(booking.hold_amount)
        fresh = item.step in FRESH_CHARGES or (walk_in and item.step == CAPTURE)
        if walk_in and item.step == CAPTURE and item.amount == 0:
            with self.store.transaction() as tx:  # nothing owed: nothing to ask the card for
                self._done(tx, item, [], note="walk-in: nothing to charge")
            self._settled(item, now)
            return
        if fresh:
            # A walk-in had no hold: its cost is authorised and captured now, as a lapsed hold's is.
            hold, reference = self._charge_afresh(item, booking.driver_id, entries)
        if hold is None or reference is None:
            raise LedgerError(f"booking {item.booking_id} has no open hold for {item.step}")
        if item.step == RELEASE:
            kind = EntryKind.VOID
            try:
                self.gateway.release(reference=reference, idempotency_key=item.idempotency_key)
            except HoldExpired:
                kind = EntryKind.EXPIRE  # it lapsed by itself: nothing left to release
            failpoint("release-called")
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
                idempotency_key=_capture_key(item, entries),
            )
        except HoldExpired as exc:
            if fresh:  # the step's own authorisation: this step charges the card afresh again
                expire_id = f"{hold.entry_id}:expire"
                expire = ledger.void_hold(hold, entries, void_id=expire_id, at=now, kind=EntryKind.EXPIRE)
                raise ChargeLapsed(f"the fresh authorisation lapsed before capture: {exc}", expire) from exc
            self._hold_lapsed(item, hold, entries)
            return
        failpoint("capture-called")
        fee = ledger.processor_fee(
            f"b{item.booking_id}:{item.step}-processing",
            item.booking_id,
            self.rules.processor_fee(amount),
            now,
        )
        topup = item.amount > amount
        with self.store.transaction() as tx:
            if topup:
                tx.outbox.enqueue(
                    item.booking_id, TOPUP, item.amount - amount, _key(item.booking_id, TOPUP), now
                )
            self._done(tx, item, [capture, split] if fee is None else [capture, split, fee])
        if topup:
            self.queued(item.booking_id)
        if item.step in (CAPTURE, CHARGE):  # CHARGE: the capture made afresh after a lapsed hold
            self._settled(item, now)

    def _on_account(self, item: OutboxItem, booking: BookingRecord, fleet_id: int) -> None:
        """A fleet's block booking: no card was held, so its cost or fee is charged to the fleet's
        account (split as a capture is) and a release has nothing to do."""
        now = self.clock.now()
        entries: list[JournalEntry] = []
        if item.step in (CAPTURE, FEE) and item.amount > 0:
            entries = list(
                charge_on_account(
                    entry_id=f"b{item.booking_id}:{item.step}",
                    split_id=f"b{item.booking_id}:{item.step}-split",
                    booking_id=item.booking_id,
                    fleet_id=fleet_id,
                    host_id=booking.host_id,
                    amount=item.amount,
                    split=split_fee(item.amount, self.rules.platform_fee_bps, self.rules.vat_bps),
                    at=now,
                )
            )
        with self.store.transaction() as tx:
            self._done(tx, item, entries, note="on account")
        if item.step == CAPTURE:
            self._settled(item, now)

    def _settled(self, item: OutboxItem, now: datetime) -> None:
        with self.store.reading() as tx:
            session = tx.sessions.for_booking(item.booking_id)
        if session is not None:
            self.bus.publish(SessionSettled(now, session.session_id, item.booking_id, item.amount))

    def _void_placement(self, item: OutboxItem, booking: BookingRecord) -> None:
        """A placement whose request died (HOLD), or one the provider may have made while we could
        not hear it (VOID_AUTH): the booking fails if it is still waiting, and replaying the hold's
        key returns the authorisation if the provider made one, which is then released."""
        if item.step == HOLD:
            with self.store.transaction() as tx:
                failed = next_status(BookingStatus.REQUESTED, BookingEvent.HOLD_DECLINED)
                tx.bookings.update(item.booking_id, failed, expected=BookingStatus.REQUESTED)
        result = self.gateway.authorize(
            amount=item.amount,
            customer=f"driver:{booking.driver_id}",
            idempotency_key=_key(item.booking_id, HOLD),
        )
        if result.approved:
            self.gateway.release(reference=result.reference, idempotency_key=_key(item.booking_id, VOID_AUTH))
        failpoint("release-called")
        with self.store.transaction() as tx:
            note = "placement abandoned: its authorisation voided" if item.step == HOLD else None
            self._done(tx, item, [], note=note, reference=result.reference if result.approved else None)

    def _hold_lapsed(self, item: OutboxItem, hold: JournalEntry, entries: list[JournalEntry]) -> None:
        """The authorisation expired before capture: record the lapse and charge the card afresh."""
        now = self.clock.now()
        expire = ledger.void_hold(
            hold, entries, void_id=f"b{item.booking_id}:expire", at=now, kind=EntryKind.EXPIRE
        )
        with self.store.transaction() as tx:
            tx.outbox.enqueue(item.booking_id, CHARGE, item.amount, _key(item.booking_id, CHARGE), now)
            self._done(tx, item, [expire], note="hold expired before capture; charging the card afresh")
        self.queued(item.booking_id)

    def _charge_afresh(
        self, item: OutboxItem, driver_id: int, entries: list[JournalEntry]
    ) -> tuple[JournalEntry, str]:
        """A new authorisation for exactly the amount owed, then captured as usual (same item)."""
        result = self.gateway.authorize(
            amount=item.amount, customer=f"driver:{driver_id}", idempotency_key=_authorisation_key(item)
        )
        if not result.approved:
            raise ChargeDeclined(f"card declined when charging afresh: {result.reason}; collect manually")
        # The step's authorisation in the ledger: the one not ended yet (a lapsed one was ended).
        mine = _step_holds(item, entries)
        hold = ledger.open_hold([*mine, *(e for e in entries if e.pending_id is not None)])
        if hold is None:
            base = f"b{item.booking_id}:{item.step}-hold"
            hold_id = base if not mine else f"{base}:{len(mine) + 1}"
            hold = ledger.place_hold(hold_id, item.booking_id, driver_id, item.amount, self.clock.now())
            with self.store.transaction() as tx:
                tx.ledger.add([hold])
            entries.append(hold)
        return hold, result.reference

    # ---- payouts -------------------------------------------------------------------------------
    def pay_out_hosts(self) -> PayoutRun:
        """Pay every host whose KYC checks are verified their payable balance (in the ledger; the
        provider's transfers are the destination charges themselves). Others are skipped, with why.
        Each host is paid under a lock on its row, from the balance read under that lock, with an
        entry id counting its payouts: racing runs pay a host once between them."""
        run = PayoutRun()
        with self.store.reading() as tx:
            verified = tx.accounts.verified_hosts()
            owed = {
                int(account.split(":")[1]): -balance
                for account, balance in ledger.posted_balances(tx.ledger.entries()).items()
                if account.startswith("host:") and balance < 0
            }
        for host_id in sorted(owed):
            if host_id not in verified:
                run.skipped[host_id] = (owed[host_id], HOST_WITHHELD)
                log.info("payout of %s pence to host %s skipped: KYC not verified", owed[host_id], host_id)
                continue
            paid = self._pay_out(host_id)
            if paid is None:  # sent back to pending or rejected since the run began
                run.skipped[host_id] = (owed[host_id], HOST_WITHHELD)
            elif paid:
                run.paid[host_id] = paid
                failpoint("payout-committed")  # each host's own: `@N` dies between two of a run's payouts
        return run

    def _pay_out(self, host_id: int) -> int | None:
        """Pay the host's payable balance (pence, 0: none owed); None if their KYC is no longer
        verified. Both read under the lock on the host's row, which a KYC change takes."""
        account = ledger.host_payable(host_id)
        with self.store.transaction() as tx:
            tx.accounts.lock_host(host_id)
            now = self.clock.now()  # dated once it holds the row: after what it waited for
            if tx.accounts.host(host_id).kyc_status != KycStatus.VERIFIED.value:
                return None
            entries = tx.ledger.entries(account=account)
            balance = -ledger.posted_balances(entries).get(account, 0)
            if balance <= 0:
                return 0
            done = sum(1 for e in entries if e.kind is EntryKind.PAYOUT)
            tx.ledger.add([ledger.payout(f"payout:{host_id}:{done + 1}", host_id, balance, now)])
        return balance

    def pay_out_export_credits(self) -> PayoutRun:
        """Pay every driver whose payout details are verified (KYC) their V2G export credit balance,
        each under a lock on its row, from the balance read under that lock: racing runs pay a
        driver once. Others are skipped, with why: their credit stays owed."""
        run = PayoutRun()
        with self.store.reading() as tx:
            verified = tx.accounts.verified_drivers()
            owed = {
                driver: -balance
                for account, balance in ledger.posted_balances(tx.ledger.entries()).items()
                if (driver := ledger.export_credit_driver(account)) is not None and balance < 0
            }
        for driver_id in sorted(owed):
            if driver_id not in verified:
                run.skipped[driver_id] = (owed[driver_id], EXPORT_WITHHELD)
                log.info(
                    "export payout of %s pence to driver %s withheld: KYC not verified",
                    owed[driver_id],
                    driver_id,
                )
                continue
            amount = self._pay_out_export(driver_id)
            if amount is None:  # rejected since the run began
                run.skipped[driver_id] = (owed[driver_id], EXPORT_WITHHELD)
            elif amount:
                run.paid[driver_id] = amount
        return run

    def driver_kyc(self, driver_id: int) -> KycStatus:
        with self.store.reading() as tx:
            return KycStatus(tx.accounts.driver_kyc(driver_id))

    def set_driver_kyc(self, driver_id: int, status: KycStatus) -> KycStatus:
        """Record the operator's check of the driver's payout details: only verified drivers are
        paid their export credits."""
        with self.store.transaction() as tx:
            # Waits for a payout of the driver in progress: once this returns, none is made unverified.
            tx.accounts.lock_driver(driver_id)
            tx.accounts.set_driver_kyc(driver_id, status.value, self.clock.now())
            return KycStatus(tx.accounts.driver_kyc(driver_id))

    def _pay_out_export(self, driver_id: int) -> int | None:
        """Pay the driver's credit balance (pence, 0: none owed); None if their payout details are
        no longer verified. Both read under the lock on the driver's row, which a KYC change takes."""
        account = ledger.driver_export_credit(driver_id)
        with self.store.transaction() as tx:
            tx.accounts.lock_driver(driver_id)
            now = self.clock.now()  # dated once it holds the row: after what it waited for
            if tx.accounts.driver_kyc(driver_id) != KycStatus.VERIFIED.value:
                return None
            entries = tx.ledger.entries(account=account)
            balance = -ledger.posted_balances(entries).get(account, 0)
            if balance <= 0:
                return 0
            done = sum(1 for e in entries if e.kind is EntryKind.EXPORT_PAYOUT)
            tx.ledger.add(
                [ledger.export_payout(f"export-payout:{driver_id}:{done + 1}", driver_id, balance, now)]
            )
        return balance


@dataclass
class PayoutRun:
    """One payout run's outcome, for hosts or for drivers' export credits, by their id."""

    paid: dict[int, int] = field(default_factory=dict)  # id -> pence paid
    skipped: dict[int, tuple[int, str]] = field(default_factory=dict)  # id -> (pence owed, why)
