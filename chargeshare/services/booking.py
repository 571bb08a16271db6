"""Book, cancel and expire: the connector's calendar and the payment hold that backs each booking."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from chargeshare.domain.booking import BookingEvent, BookingStatus, check_period, next_status
from chargeshare.domain.errors import InvalidRequest, NotFound, PaymentDeclined
from chargeshare.domain.tariff import Tariff
from chargeshare.services.clock import Clock
from chargeshare.services.events import BookingConfirmed, BookingEnded, InProcessBus
from chargeshare.services.ports import LockManager, Store
from chargeshare.services.records import BookingRecord
from chargeshare.services.rules import MarketplaceRules
from chargeshare.services.settlement import SettlementService


@dataclass(frozen=True)
class BookRequest:
    driver_id: int
    charger_id: int
    connector_no: int
    minutes: int
    max_energy_wh: int
    starts_at: datetime | None = None  # None: charge now


class BookingService:
    def __init__(
        self,
        store: Store,
        locks: LockManager,
        settlement: SettlementService,
        bus: InProcessBus,
        clock: Clock,
        rules: MarketplaceRules,
    ) -> None:
        self.store, self.locks, self.settlement = store, locks, settlement
        self.bus, self.clock, self.rules = bus, clock, rules

    def _validate(self, req: BookRequest) -> None:
        r = self.rules
        if not r.min_booking_minutes <= req.minutes <= r.max_booking_minutes:
            raise InvalidRequest(
                f"minutes must be between {r.min_booking_minutes} and {r.max_booking_minutes}"
            )
        if not 0 < req.max_energy_wh <= r.max_energy_wh:
            raise InvalidRequest(f"max_energy_wh must be between 1 and {r.max_energy_wh}")

    def book(self, req: BookRequest) -> BookingRecord:
        self._validate(req)
        now = self.clock.now()
        starts_at = req.starts_at or now
        ends_at = starts_at + timedelta(minutes=req.minutes)
        check_period(starts_at, ends_at)
        if ends_at <= now:
            raise InvalidRequest("that booking would already be over")
        with self.store.transaction() as tx:
            tx.driver(req.driver_id)
            charger = tx.charger_by_id(req.charger_id)
        connector = next((c for c in charger.connectors if c.connector_no == req.connector_no), None)
        if connector is None:
            raise NotFound(f"charger {req.charger_id} has no connector {req.connector_no}")
        hold_amount = self.rules.hold_amount(Tariff(charger.price_per_kwh).cost(req.max_energy_wh))
        if hold_amount <= 0:
            raise InvalidRequest("this booking costs nothing to hold; free chargers are not supported yet")

        lock_key = f"connector:{connector.connector_id}"
        with self.locks.hold(lock_key, self.rules.lock_ttl_ms) as lease, self.store.transaction() as tx:
            booking_id = tx.insert_booking(
                driver_id=req.driver_id,
                connector_id=connector.connector_id,
                starts_at=starts_at,
                ends_at=ends_at,
                max_energy_wh=req.max_energy_wh,
                price_per_kwh=charger.price_per_kwh,
                hold_amount=hold_amount,
                created_at=now,
                fencing_token=None if lease is None else lease.fencing_token,
            )
        try:
            hold = self.settlement.place_hold(booking_id, req.driver_id, hold_amount)
        except PaymentDeclined:
            with self.store.transaction() as tx:
                tx.update_booking(
                    booking_id, next_status(BookingStatus.REQUESTED, BookingEvent.HOLD_DECLINED)
                )
            raise
        entry = self.settlement.hold_entry(booking_id, req.driver_id, hold_amount)
        with self.store.transaction() as tx:
            tx.add_entries([entry])
            tx.update_booking(
                booking_id,
                next_status(BookingStatus.REQUESTED, BookingEvent.HOLD_PLACED),
                payment_ref=hold.reference,
            )
            record = tx.booking(booking_id)
        self.bus.publish(BookingConfirmed(now, booking_id, req.driver_id))
        return record

    def cancel(self, booking_id: int, driver_id: int | None = None) -> BookingRecord:
        """Cancel before charging starts; the whole hold goes back to the driver."""
        return self._end_unstarted(booking_id, BookingEvent.CANCEL, driver_id)

    def expire_no_shows(self, grace: timedelta) -> list[int]:
        """Confirmed bookings whose driver never plugged in within `grace` of the start are expired."""
        now = self.clock.now()
        with self.store.transaction() as tx:
            due = [
                b.booking_id
                for b in tx.bookings()
                if b.status is BookingStatus.CONFIRMED and b.starts_at + grace <= now
            ]
        for booking_id in due:
            self._end_unstarted(booking_id, BookingEvent.NO_SHOW, None)
        return due

    def _end_unstarted(self, booking_id: int, event: BookingEvent, driver_id: int | None) -> BookingRecord:
        with self.store.transaction() as tx:
            booking = tx.booking(booking_id)
            if driver_id is not None and booking.driver_id != driver_id:
                raise NotFound(f"no booking {booking_id} for driver {driver_id}")
            status = next_status(booking.status, event)
            tx.update_booking(booking_id, status)
        self.settlement.release(booking_id)
        self.bus.publish(BookingEnded(self.clock.now(), booking_id, status.value))
        with self.store.transaction() as tx:
            return tx.booking(booking_id)
