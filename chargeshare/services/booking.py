"""Book, cancel, expire and reserve: the connector's calendar and the payment hold behind each booking."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chargeshare.domain.availability import covers
from chargeshare.domain.booking import BookingEvent, BookingStatus, Party, check_period, next_status
from chargeshare.domain.charger import BootPolicy, ChargerStatus, ConnectorStatus
from chargeshare.domain.dynamic_pricing import Price
from chargeshare.domain.errors import (
    BookingConflict,
    ChargerUnavailable,
    ConcurrentChange,
    IdempotencyKeyReused,
    InvalidRequest,
    NotFound,
    PriceAboveLimit,
    QuoteUsed,
    RequestInProgress,
)
from chargeshare.domain.instants import RANGE, in_range
from chargeshare.domain.tariff import Tariff
from chargeshare.failpoints import failpoint
from chargeshare.services.clock import Clock
from chargeshare.services.events import (
    BookingConfirmed,
    BookingEnded,
    MessageBus,
    ReservationDue,
    SessionStopped,
)
from chargeshare.services.fleet import penalty_for_host_cancel
from chargeshare.services.ports import LockManager, NoSlotClaims, SlotClaim, SlotClaims, Store, UnitOfWork
from chargeshare.services.pricing import PricingService
from chargeshare.services.records import BookingRecord, ChargerView
from chargeshare.services.rules import MarketplaceRules
from chargeshare.services.settlement import SettlementService

log = logging.getLogger(__name__)

# Reservation states kept on the booking (the charger's answer to ReserveNow, and what it said of the
# reservation since: "expired" is the charger's own word that it no longer holds it).
RESERVATION_NONE, RESERVATION_SENT, RESERVATION_ACCEPTED = "none", "sent", "accepted"
RESERVATION_EXPIRED = "expired"
# The charger answered Occupied: asked again once the connector is free. A booking still so when
# its grace ends is excused its no-show fee: whose car held the connector, nobody can tell.
RESERVATION_OCCUPIED = "occupied"
# ReservationStatusUpdate words for a reservation the charger dropped before its time, which a live
# booking asks for again (said in the outcome as the value). "Expired" is the other word.
RESERVATION_DROPPED = {"Removed": "removed", "NoTransaction": "used without a transaction"}

# The security event kept when a charger speaks of a reservation another charger holds.
FOREIGN_RESERVATION = "ForeignReservation"


@dataclass(frozen=True)
class BookRequest:
    driver_id: int
    charger_id: int
    connector_no: int
    minutes: int
    max_energy_wh: int
    starts_at: datetime | None = None  # None: charge now
    # The driver overrides the charger's randomised delay and default charging hours for this
    # booking (the UK's smart charging regulations let an end-user do so).
    override_smart_charging: bool = False
    # The most the driver accepts per kWh (pence, what it was quoted): a dearer price is refused.
    max_price_per_kwh: int | None = None
    # A quote held for the driver (`PricingService.hold`): the booking is made at its price, or refused.
    quote_id: int | None = None

    def fingerprint(self) -> str:
        """What the request asks for, so a key sent again with another request is told apart."""
        asked: list[object] = [
            self.charger_id,
            self.connector_no,
            self.minutes,
            self.max_energy_wh,
            # The instant, in UTC: the same start written with another offset is the same request.
            None if self.starts_at is None else self.starts_at.astimezone(UTC).isoformat(),
        ]
        if self.override_smart_charging:  # only when asked: fingerprints made before it stay as they were
            asked.append("override_smart_charging")
        if self.max_price_per_kwh is not None:
            asked.append(f"max_price_per_kwh={self.max_price_per_kwh}")
        if self.quote_id is not None:
            asked.append(f"quote_id={self.quote_id}")
        return hashlib.sha256(json.dumps(asked).encode()).hexdigest()


class BookingService:
    def __init__(
        self,
        store: Store,
        locks: LockManager,
        settlement: SettlementService,
        bus: MessageBus,
        clock: Clock,
        rules: MarketplaceRules,
        pricing: PricingService,
        claims: SlotClaims | None = None,
    ) -> None:
        self.store, self.locks, self.settlement = store, locks, settlement
        self.bus, self.clock, self.rules = bus, clock, rules
        self.pricing = pricing
        self.claims: SlotClaims = claims or NoSlotClaims()
        bus.subscribe(SessionStopped, self._session_stopped)

    def _validate(self, req: BookRequest) -> None:
        r = self.rules
        if not r.min_booking_minutes <= req.minutes <= r.max_booking_minutes:
            raise InvalidRequest(
                f"minutes must be between {r.min_booking_minutes} and {r.max_booking_minutes}"
            )
        if not 0 < req.max_energy_wh <= r.max_energy_wh:
            raise InvalidRequest(f"max_energy_wh must be between 1 and {r.max_energy_wh}")
        if req.max_price_per_kwh is not None and req.max_price_per_kwh < 0:
            raise InvalidRequest("max_price_per_kwh cannot be negative")

    def book(self, req: BookRequest, request_key: str | None = None) -> BookingRecord:
        """Reserve the connector's time, then place the card hold. Conflicts never reach the card.

        With a `request_key` (the client's Idempotency-Key), the same request sent again answers as
        the first did: the booking it made, or the refusal of its hold; RequestInProgress while the
        first is still placing the hold; IdempotencyKeyReused if the key was for another request."""
        if request_key is not None:
            earlier = self._made_by(req, request_key)
            if earlier is not None:
                return earlier
        try:
            return self._book(req, request_key)
        except (BookingConflict, PriceAboveLimit):
            # A copy of this request may have got in first (it raced us, or our answer was lost):
            # its booking takes the slot, and fills the area, which may raise the price quoted here.
            earlier = None if request_key is None else self._made_by(req, request_key)
            if earlier is None:
                raise
            return earlier

    def _made_by(self, req: BookRequest, request_key: str) -> BookingRecord | None:
        """The booking an earlier request under this key made, as that request would have answered."""
        with self.store.reading() as tx:
            seen = tx.bookings.request_seen(req.driver_id, request_key)
            if seen is None:
                return None
            fingerprint, booking_id = seen
            if fingerprint != req.fingerprint():
                raise IdempotencyKeyReused("this Idempotency-Key was used for a different booking request")
            booking = tx.bookings.get(booking_id)
        if booking.status is BookingStatus.REQUESTED:
            raise RequestInProgress(f"booking {booking_id} is still waiting for its card hold")
        if booking.status is BookingStatus.FAILED and booking.payment_ref is None:
            # Failed for its hold. One failed later (its charger refused the reservation) was
            # confirmed when the first request answered: the copy answers with it too.
            raise self.settlement.placement_refusal(booking_id)
        return booking

    def _book(self, req: BookRequest, request_key: str | None) -> BookingRecord:
        self._validate(req)
        now = self.clock.now()
        if req.starts_at is not None and not in_range(req.starts_at):
            raise InvalidRequest(f"a booking must start {RANGE}")
        starts_at = req.starts_at or now
        ends_at = starts_at + timedelta(minutes=req.minutes)
        check_period(starts_at, ends_at)
        if starts_at < now - timedelta(seconds=self.rules.past_start_tolerance_s):
            raise InvalidRequest("a booking cannot start in the past")
        if starts_at > now + timedelta(days=self.rules.max_advance_days):
            raise InvalidRequest(
                f"bookings can be made at most {self.rules.max_advance_days} days ahead "
                f"(a card hold lapses after {self.rules.hold_lifetime_days})"
            )
        # Claimed ahead of the database: in a race for the slot, the losers stop here. Not copies of
        # one request, though: the first may not have committed (or may have died before it), and
        # only the database can tell a copy whether to wait for it, answer with it, or book.
        owner = "" if request_key is None else f"{req.driver_id}:{request_key}"
        claim = self.claims.claim(req.charger_id, req.connector_no, starts_at, ends_at, now, owner)
        if claim is None:
            raise BookingConflict(
                "the connector is already booked, or being booked, for an overlapping period"
            )
        try:
            record = self._book_claimed(req, request_key, starts_at, ends_at, now, claim)
        except BaseException:
            self.claims.release(claim)
            raise
        if claim.member:
            self.claims.confirm(claim, record.booking_id, self.clock.now())
            # It may have ended since it was confirmed in the database (its host cancelled it, its
            # charger refused the reservation), before the claim named it: that end released nothing.
            current = self._read_back(record)
            if current.status not in (BookingStatus.CONFIRMED, BookingStatus.ACTIVE):
                self.claims.release_booking(req.charger_id, record.booking_id)
        return record

    def _read_back(self, record: BookingRecord) -> BookingRecord:
        """The booking as the database has it now; `record` if it cannot be read. The booking is
        made by then: its request is answered with it, not with an error a retry would not mend."""
        try:
            with self.store.reading() as tx:
                return tx.bookings.get(record.booking_id)
        except Exception:
            log.exception("booking %d made, but not read back: answered as committed", record.booking_id)
            return record

    def _book_claimed(
        self,
        req: BookRequest,
        request_key: str | None,
        starts_at: datetime,
        ends_at: datetime,
        now: datetime,
        slot: SlotClaim,
    ) -> BookingRecord:
        with self.store.reading() as tx:
            tx.accounts.driver(req.driver_id)
            charger = tx.chargers.by_id(req.charger_id)
            calendar = tx.chargers.availability([req.charger_id]).get(req.charger_id, [])
            if req.quote_id is None:
                quote, quoted_at = self.pricing.quote_in(tx, charger, starts_at, ends_at).price, now
            else:  # the price the driver was shown, if the quote is theirs, for this, and still good
                held = tx.pricing.held(req.quote_id)
                held.check_use(req.driver_id, req.charger_id, req.starts_at, req.minutes, now)
                quote, quoted_at = Price(held.per_kwh, held.mode), held.quoted_at
        connector = next((c for c in charger.connectors if c.connector_no == req.connector_no), None)
        if connector is None:
            raise NotFound(f"charger {req.charger_id} has no connector {req.connector_no}")
        if charger.boot_policy is not BootPolicy.ACCEPTED:
            raise ChargerUnavailable("the charger is not in service: it has not been accepted by its host")
        if not covers(calendar, starts_at, ends_at):
            raise ChargerUnavailable("the host has not made the charger available for that whole period")
        if self._starts_soon(starts_at, now) and charger.status is not ChargerStatus.ONLINE:
            raise ChargerUnavailable("the charger is offline, so it cannot be booked to charge now")
        if req.max_price_per_kwh is not None and quote.per_kwh > req.max_price_per_kwh:
            raise PriceAboveLimit(
                f"the price is now {quote.per_kwh}p per kWh, above the {req.max_price_per_kwh}p you accept"
            )
        # The quote is the booking's price: its hold is sized by it, and its session billed at it.
        hold_amount = Tariff(quote.per_kwh).cost(self.rules.hold_energy(req.max_energy_wh))
        if hold_amount <= 0:
            raise InvalidRequest("this booking costs nothing to hold; free chargers are not supported yet")

        # The booking and its hold placement commit together, before the provider is asked: a crash
        # from here on leaves a placement that recovery finishes (fails the booking, voids the hold).
        lock_key = f"connector:{connector.connector_id}"
        with self.locks.hold(lock_key, self.rules.lock_ttl_ms) as lease, self.store.transaction() as tx:
            booking_id = tx.bookings.add(
                driver_id=req.driver_id,
                connector_id=connector.connector_id,
                starts_at=starts_at,
                ends_at=ends_at,
                max_energy_wh=req.max_energy_wh,
                price_per_kwh=quote.per_kwh,
                hold_amount=hold_amount,
                created_at=now,
                fencing_token=None if lease is None else lease.fencing_token,
            )
            if request_key is not None and not tx.bookings.remember_request(
                req.driver_id, request_key, req.fingerprint(), booking_id, now
            ):
                # Another request under this key got in first (a copy racing us, or a different
                # request): undone with this unit of work, and answered from what that one made.
                raise BookingConflict("a request under this Idempotency-Key is already being made")
            if req.quote_id is not None and not tx.pricing.use_held(req.quote_id, booking_id):
                # Used since we read it: by a copy of this request (answered as that one was), or not.
                raise QuoteUsed(f"quote {req.quote_id} was used by a booking already; ask for a new quote")
            tx.pricing.add_quote(booking_id, quote, quoted_at)
            if req.override_smart_charging:
                tx.smart.add_override(booking_id, now)
            claim = self.settlement.record_placement(tx, booking_id, hold_amount)
        failpoint("booking-committed")
        # Written: the claim now stands for a booking whose hold is being placed, for as long as that
        # may take (the short pending window was for a claimant that dies before writing it).
        self.claims.placing(slot, self.clock.now())
        placement = self.settlement.authorize(booking_id, req.driver_id, hold_amount)
        failpoint("hold-authorized")
        record = self.settlement.finish_placement(booking_id, req.driver_id, hold_amount, placement, claim)
        failpoint("booking-confirmed")
        self.bus.publish(BookingConfirmed(now, booking_id, req.driver_id))
        if self._starts_soon(starts_at, now):
            try:
                if self._connector_free(record):
                    self._request_reservation(record)  # else the housekeeping sweep sends it once free
            except Exception:  # the sweep sends it: the booking is made whatever happened here
                log.exception("booking %d made, its reservation left to the sweep", booking_id)
            record = self._read_back(record)
        return record

    def _connector_free(self, booking: BookingRecord) -> bool:
        with self.store.transaction() as tx:
            charger = tx.chargers.by_id(booking.charger_id)
        connector = next(c for c in charger.connectors if c.connector_id == booking.connector_id)
        return connector.status is ConnectorStatus.AVAILABLE

    def _starts_soon(self, starts_at: datetime, now: datetime) -> bool:
        return starts_at <= self._soon_by(now)

    def _soon_by(self, now: datetime) -> datetime:
        """The latest start that counts as soon: the charger is asked to reserve from then on."""
        return now + timedelta(minutes=self.rules.reserve_lead_minutes)

    # ---- reservations (OCPP ReserveNow) ---------------------------------------------------------
    def _request_reservation(self, booking: BookingRecord) -> bool:
        """Ask the charger to reserve the booking's connector; False if another process has asked,
        or the booking has ended, since `booking` was read."""
        with self.store.transaction() as tx:
            # Claimed atomically: the booking call and the housekeeping sweep may both get here, and
            # a cancel or expiry committed since the read must send no ReserveNow (nothing cancels it).
            if booking.reservation not in (RESERVATION_NONE, RESERVATION_OCCUPIED):
                return False
            if not tx.bookings.set_reservation(
                booking.booking_id,
                RESERVATION_SENT,
                expected=booking.reservation,
                status=BookingStatus.CONFIRMED,
            ):
                return False
            charger = tx.chargers.by_id(booking.charger_id)
            driver = tx.accounts.driver(booking.driver_id)
        self.bus.publish(self._reservation_due(booking, charger, driver.id_tag))
        return True

    def _reservation_due(self, booking: BookingRecord, charger: ChargerView, id_tag: str) -> ReservationDue:
        connector_no = next(
            c.connector_no for c in charger.connectors if c.connector_id == booking.connector_id
        )
        grace = timedelta(minutes=self.rules.cancellation.no_show_grace_minutes)
        return ReservationDue(
            self.clock.now(),
            booking.booking_id,
            charger.charge_point_id,
            connector_no,
            id_tag,
            booking.starts_at + grace,
        )

    def reservations_unanswered(self, cp_id: str) -> list[ReservationDue]:
        """Reservations asked of this charger that it never answered (it was not connected, or the
        answer was lost): its confirmed bookings still "sent", to be asked again when it connects.
        Raises NotFound for an unregistered charger."""
        with self.store.reading() as tx:
            return self.reservations_unanswered_in(tx, tx.chargers.get(cp_id))

    def reservations_unanswered_in(self, tx: UnitOfWork, charger: ChargerView) -> list[ReservationDue]:
        """The same, read in the caller's unit of work (see `owed_commands.due_at_connect`)."""
        sent = tx.bookings.reservations_on(charger.charger_id, RESERVATION_SENT)
        tags = {b.driver_id: tx.accounts.driver(b.driver_id).id_tag for b in sent}
        return [self._reservation_due(b, charger, tags[b.driver_id]) for b in sent]

    def cancellations_unanswered(self, cp_id: str) -> list[BookingEnded]:
        """Cancelled or expired bookings whose reservation the charger may still hold (the
        CancelReservation reached no one: the charger was away, or the process holding its link
        died), to be cancelled when it connects. Raises NotFound for an unregistered charger."""
        with self.store.reading() as tx:
            return self.cancellations_unanswered_in(tx, tx.chargers.get(cp_id))

    def cancellations_unanswered_in(self, tx: UnitOfWork, charger: ChargerView) -> list[BookingEnded]:
        """The same, read in the caller's unit of work (see `owed_commands.due_at_connect`)."""
        held = [
            b
            for status in (BookingStatus.CANCELLED, BookingStatus.EXPIRED)
            for state in (RESERVATION_SENT, RESERVATION_ACCEPTED)
            for b in tx.bookings.reservations_on(charger.charger_id, state, status)
        ]
        now, cp_id = self.clock.now(), charger.charge_point_id
        return [BookingEnded(now, b.booking_id, b.status.value, cp_id, b.reservation) for b in held]

    def reservation_cancelled(self, booking_id: int) -> None:
        """The charger no longer holds the ended booking's reservation (it cancelled it, or had none)."""
        with self.store.transaction() as tx:
            if tx.bookings.get(booking_id).status is not BookingStatus.CONFIRMED:
                tx.bookings.set_reservation(booking_id, RESERVATION_NONE)

    def reservations_due(self) -> list[int]:
        """Confirmed bookings starting within the lead time, with no reservation yet, on a free connector
        (an occupied one means the earlier driver has not left yet: try again next sweep). A started
        booking whose connector is not free is marked held, which excuses a no-show its fee. Returns
        the bookings this call asked for (not those another process asked for, or that ended, meanwhile)."""
        now = self.clock.now()
        starts_by = self._soon_by(now)
        with self.store.transaction() as tx:
            soon = sorted(
                (
                    b
                    for state in (RESERVATION_NONE, RESERVATION_OCCUPIED)
                    for b in tx.bookings.starting_by(BookingStatus.CONFIRMED, starts_by, reservation=state)
                ),
                key=lambda b: b.booking_id,
            )
            statuses = tx.chargers.connector_statuses(
                [b.connector_id for b in soon]
            )  # one query, not one each
            for b in soon:
                status = statuses.get(b.connector_id)
                if (
                    b.starts_at <= now
                    and status not in (None, ConnectorStatus.AVAILABLE)
                    and not b.connector_held
                ):
                    tx.bookings.mark_connector_held(b.booking_id)
        due = [b for b in soon if statuses.get(b.connector_id) is ConnectorStatus.AVAILABLE]
        return [b.booking_id for b in due if self._request_reservation(b)]

    def reservation_unanswered(self, booking_id: int) -> bool:
        """A ReserveNow that reached no charger (a CALLERROR, or no process to carry it): a confirmed
        booking's reservation goes back to "none", so the next sweep asks again rather than waiting
        for the charger to reconnect (one whose answer was lost stays "sent": the charger may hold
        it). Asking twice is harmless: a charger holding the reservation answers Accepted for the
        same id. True when reset."""
        with self.store.transaction() as tx:
            booking = tx.bookings.get(booking_id)
            if booking.status is not BookingStatus.CONFIRMED or booking.reservation != RESERVATION_SENT:
                return False
            # A compare-and-set: another process may have had the charger's answer meanwhile (sent
            # again as the charger connected there), and that answer says what the charger holds.
            return tx.bookings.set_reservation(booking_id, RESERVATION_NONE, expected=RESERVATION_SENT)

    def reservation_answered(self, booking_id: int, status: str) -> bool:
        """The charger's ReserveNow answer. Occupied means "not yet" (asked again once the connector is
        free, and a no-show excused its fee) unless another booking's session has held the connector
        since the start. Any other
        refusal fails the booking and returns the hold. True when the charger accepted a
        reservation for a booking cancelled or expired while the ReserveNow was on its way: it must be
        cancelled (the CancelReservation sent as it ended may have reached the charger first)."""
        with self.store.transaction() as tx:
            booking = tx.bookings.get(booking_id)
            if booking.status in (BookingStatus.CANCELLED, BookingStatus.EXPIRED):
                # The charger's answer says what it holds: an accepted reservation stays on record
                # (asked again on connecting) until a CancelReservation is answered.
                held = status == "Accepted"
                tx.bookings.set_reservation(booking_id, RESERVATION_ACCEPTED if held else RESERVATION_NONE)
                return held
            if booking.status is not BookingStatus.CONFIRMED:
                return False
            if status == "Accepted":
                tx.bookings.set_reservation(booking_id, RESERVATION_ACCEPTED)
                return False
            now = self.clock.now()
            if status == "Occupied" and (
                now < booking.starts_at
                or not tx.sessions.held_by_another(booking.connector_id, booking_id, booking.starts_at, now)
            ):
                # Not yet: no other session holds the connector, so the car in it is the driver's own
                # (plugged in as the ReserveNow travelled) or one yet to leave; the grace decides the rest.
                tx.bookings.set_reservation(booking_id, RESERVATION_OCCUPIED)
                if now >= booking.starts_at:
                    tx.bookings.mark_connector_held(booking_id)
                return False
            failed = next_status(booking.status, BookingEvent.RESERVATION_REJECTED)
            if not tx.bookings.update(booking_id, failed, expected=booking.status):
                return False  # it started, or was cancelled, meanwhile
            tx.bookings.set_reservation(booking_id, RESERVATION_NONE)  # refused: nothing to cancel on it
            self.settlement.queue_release(tx, booking_id)
        self.settlement.queued(booking_id)
        self._ended(booking_id)
        return False

    def reservation_ended_on_charger(self, cp_id: str, reservation_id: int, status: str) -> str:
        """OCPP 2.0.1 / 2.1 ReservationStatusUpdate: the charger no longer holds the reservation (our
        booking id). "Expired": kept so, and never cancelled or asked again; a booking whose no-show
        grace is over is expired now, as the sweep would. "Removed" (taken away on the charger, not
        by us) and 2.1's "NoTransaction" (its driver's token used it up, but no transaction began in
        time): a booking still to come is asked again once its connector is free. A reservation
        on another charger changes nothing and is kept as a security event. Says what was done.
        Raises NotFound for an unregistered charger."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            charger = tx.chargers.get(cp_id)
            try:
                booking = tx.bookings.get(reservation_id)
            except NotFound:
                return f"no reservation {reservation_id}"
            if booking.charger_id != charger.charger_id:
                tx.security.record(
                    cp_id,
                    FOREIGN_RESERVATION,
                    f"ReservationStatusUpdate named reservation {reservation_id}, another charger's",
                    now,
                )
                return "another charger's reservation: ignored"
            if booking.reservation not in (RESERVATION_SENT, RESERVATION_ACCEPTED):
                return f"reservation already {booking.reservation}"
            live = booking.status is BookingStatus.CONFIRMED
            again = status in RESERVATION_DROPPED
            after = RESERVATION_NONE if again else RESERVATION_EXPIRED
            if not tx.bookings.set_reservation(reservation_id, after, expected=booking.reservation):
                return "reservation changed meanwhile"
        if again:
            said = RESERVATION_DROPPED[status]
            return f"{said} on the charger: asked again when the connector is free" if live else said
        grace = timedelta(minutes=self.rules.cancellation.no_show_grace_minutes)
        if live and now >= booking.starts_at + grace and self._expire_no_show(booking):
            return "expired: the booking is a no-show"
        return "expired"

    # ---- ending unused bookings -----------------------------------------------------------------
    def cancel(
        self, booking_id: int, *, driver_id: int | None = None, host_id: int | None = None
    ) -> BookingRecord:
        """Cancel before charging starts, as its driver or as the charger's host (free for the driver).
        The status change is a compare-and-set: of two cancellations at once, one wins, the other is
        told the booking changed; the fee or release is queued with it, once."""
        if (driver_id is None) == (host_id is None):
            raise InvalidRequest("cancel as the booking's driver or as the charger's host")
        with self.store.transaction() as tx:
            booking = tx.bookings.get(booking_id)
            if (driver_id is not None and booking.driver_id != driver_id) or (
                host_id is not None and booking.host_id != host_id
            ):
                raise NotFound(f"no booking {booking_id} for you")
            party = Party.DRIVER if driver_id is not None else Party.HOST
            status = next_status(booking.status, BookingEvent.CANCEL)
            fee = self.rules.cancellation.cancellation_fee(
                party, self.clock.now(), booking.starts_at, booking.hold_amount
            )
            if booking.status is BookingStatus.REQUESTED:
                fee = 0  # no hold yet to take a fee from
            if not tx.bookings.update(
                booking_id, status, fee=fee, cancelled_by=party.value, expected=booking.status
            ):
                raise ConcurrentChange(f"booking {booking_id} changed meanwhile; look at it again")
            if booking.status is not BookingStatus.REQUESTED:  # a placement in flight voids its own hold
                self.settlement.queue_close(tx, booking_id, fee)
            if party is Party.HOST:  # a fleet's block occurrence: the contract's penalty, if late
                penalty_for_host_cancel(tx, booking, self.clock.now())
        failpoint("cancel-committed")
        self.settlement.queued(booking_id)
        return self._ended(booking_id)

    def expire_no_shows(self, grace: timedelta | None = None, *, unstarted: bool = False) -> list[int]:
        """Confirmed bookings whose driver never plugged in within the grace period are expired.
        One on a charger that is offline waits: its driver may be charging there, the start queued
        until the charger is back. Once its period is over (or with `grace` given: the end of a
        simulation) it expires all the same, without a fee, since nobody could tell. `unstarted`
        (the end of a simulation too) expires those yet to start as well, excused their fee."""
        policy = self.rules.cancellation
        final = grace is not None
        grace = timedelta(minutes=policy.no_show_grace_minutes) if grace is None else grace
        now = self.clock.now()
        # No booking starts beyond the booking horizon, so that bound takes in every one still to come.
        starts_by = now + timedelta(days=self.rules.max_advance_days + 1) if unstarted else now - grace
        with self.store.reading() as tx:
            due = tx.bookings.starting_by(BookingStatus.CONFIRMED, starts_by)
        return [b.booking_id for b in due if self._expire_no_show(b, final=final)]

    def _expire_no_show(self, b: BookingRecord, *, final: bool = True) -> bool:
        """Expire a confirmed booking whose driver never came, with its fee (none if another
        session held the connector during the arrival grace, or its charger is offline); False if
        it started or was cancelled meanwhile, or waits for its offline charger (`expire_no_shows`)."""
        policy = self.rules.cancellation
        now = self.clock.now()
        grace_end = min(now, b.starts_at + timedelta(minutes=policy.no_show_grace_minutes))
        with self.store.transaction() as tx:
            offline = tx.chargers.by_id(b.charger_id).status is ChargerStatus.OFFLINE
            if offline and not final and now < b.ends_at:
                return False
            b = tx.bookings.get(b.booking_id)  # as it is now: a sweep may have marked it held since
            excused = (
                offline
                or b.connector_held  # another car held it, or it could not be used, after the start
                or b.reservation == RESERVATION_OCCUPIED  # a car held the connector, maybe not theirs
                or b.starts_at >= now  # the run ended before its slot began: its driver could not come
                or tx.sessions.held_by_another(b.connector_id, b.booking_id, b.starts_at, grace_end)
            )
            fee = policy.no_show_charge(b.hold_amount, excused=excused)
            expired_status = next_status(BookingStatus.CONFIRMED, BookingEvent.NO_SHOW)
            if not tx.bookings.update(
                b.booking_id, expired_status, fee=fee, expected=BookingStatus.CONFIRMED
            ):
                return False
            self.settlement.queue_close(tx, b.booking_id, fee)
        self.settlement.queued(b.booking_id)
        self._ended(b.booking_id)
        return True

    def _session_stopped(self, e: SessionStopped) -> None:
        with self.store.reading() as tx:
            record = tx.bookings.get(e.booking_id)
        self.claims.release_booking(record.charger_id, e.booking_id)  # the rest of its period is free

    def _ended(self, booking_id: int) -> BookingRecord:
        with self.store.transaction() as tx:
            record = tx.bookings.get(booking_id)
            charger = tx.chargers.by_id(record.charger_id)
        self.claims.release_booking(record.charger_id, booking_id)
        self.bus.publish(
            BookingEnded(
                self.clock.now(), booking_id, record.status.value, charger.charge_point_id, record.reservation
            )
        )
        return record
