"""The ports services depend on. Adapters implement them; tests swap in fakes or in-memory backends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from chargeshare.domain.availability import WeeklyWindow
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.charger import ChargerSpec, ChargerStatus, ConnectorStatus, ConnectorType
from chargeshare.domain.ledger import JournalEntry
from chargeshare.domain.search import SearchQuery
from chargeshare.services.records import (
    AccountRecord,
    BookingRecord,
    ChargerView,
    DriverRecord,
    HostRecord,
    MeterAdvance,
    OutboxItem,
    SecurityEvent,
    SessionRecord,
)


class Transaction(Protocol):
    """One unit of work: everything done through it commits together or not at all."""

    # parties
    def add_host(self, name: str) -> int: ...
    def add_driver(self, name: str, id_tag: str) -> int: ...
    def driver(self, driver_id: int) -> DriverRecord: ...
    def driver_by_tag(self, id_tag: str) -> DriverRecord | None: ...

    # chargers
    def add_charger(self, spec: ChargerSpec) -> int: ...
    def charger(self, charge_point_id: str) -> ChargerView: ...
    def status_and_connector(
        self, charge_point_id: str, connector_no: int
    ) -> tuple[ChargerStatus, int | None]:
        """The charger's status and the id of its connector `connector_no` (None if it has no such
        connector: OCPP's 0 is the charger itself); raises NotFound for an unregistered charger."""
        ...

    def charger_by_id(self, charger_id: int) -> ChargerView: ...
    def chargers(self) -> Sequence[ChargerView]: ...
    def search(self, query: SearchQuery) -> Sequence[ChargerView]:
        """Chargers matching the query: by id for a box, nearest first (then id) for a radius."""
        ...

    def set_availability(self, charger_id: int, windows: Sequence[WeeklyWindow]) -> None: ...
    def availability(self, charger_ids: Sequence[int]) -> dict[int, list[WeeklyWindow]]: ...
    def set_charger_status(
        self, charge_point_id: str, status: ChargerStatus, at: datetime, ocpp_version: str | None = None
    ) -> None: ...
    def touch_charger(self, charge_point_id: str, at: datetime) -> None:
        """Set last seen; raises NotFound for an unregistered charger."""
        ...

    def touch_chargers(self, stamps: Mapping[str, datetime]) -> list[str]:
        """Set each charger's last seen; the ids that are not registered (nothing written for them)."""
        ...

    def set_charger_password(self, charge_point_id: str, password_hash: str | None) -> None: ...
    def charger_password(self, charge_point_id: str) -> str | None:
        """The stored hash; raises NotFound for an unregistered charger."""
        ...

    def remove_charger(self, charge_point_id: str) -> None:
        """Delete a charger that has never been booked (raise InvalidRequest otherwise)."""
        ...

    def silent_chargers(self, seen_before: datetime) -> Sequence[ChargerView]: ...
    def notify_host(self, host_id: int, kind: str, subject: str, body: str, at: datetime) -> None: ...
    def notifications(self, host_id: int | None = None) -> Sequence[dict[str, object]]: ...
    def record_security_event(self, charge_point_id: str, kind: str, detail: str, at: datetime) -> None: ...
    def security_events(self, charge_point_id: str | None = None) -> Sequence[SecurityEvent]: ...
    def set_connector_status(
        self, charge_point_id: str, connector_no: int, status: ConnectorStatus
    ) -> None: ...
    def connector_statuses(self, connector_ids: Sequence[int]) -> dict[int, ConnectorStatus]:
        """The status of each of these connectors, in one query (ids that do not exist are left out)."""
        ...

    # bookings
    def insert_booking(
        self,
        *,
        driver_id: int,
        connector_id: int,
        starts_at: datetime,
        ends_at: datetime,
        max_energy_wh: int,
        price_per_kwh: int,
        hold_amount: int,
        created_at: datetime,
        fencing_token: int | None,
    ) -> int:
        """Insert a REQUESTED booking; raise BookingConflict if a live booking overlaps it."""
        ...

    def booking(self, booking_id: int) -> BookingRecord: ...
    def bookings(self, status: BookingStatus | None = None) -> Sequence[BookingRecord]: ...
    def bookings_starting_by(
        self, status: BookingStatus, starts_by: datetime, *, reservation: str | None = None
    ) -> Sequence[BookingRecord]:
        """Bookings in `status` starting at or before `starts_by` (and in this reservation state if
        given), by id: what the housekeeping sweep is due to act on, without reading the rest."""
        ...

    def update_booking(
        self,
        booking_id: int,
        status: BookingStatus,
        *,
        ends_at: datetime | None = None,
        payment_ref: str | None = None,
        fee: int | None = None,
        cancelled_by: str | None = None,
    ) -> None: ...

    def set_reservation(self, booking_id: int, state: str, *, expected: str | None = None) -> bool:
        """Set the reservation state; with `expected`, only if it is still that (compare-and-set)."""
        ...

    def booking_for_start(self, connector_id: int, driver_id: int, at: datetime) -> BookingRecord | None: ...

    # sessions
    def session_by_start_key(
        self, connector_id: int, id_tag: str, meter_start: int, started_at: datetime
    ) -> SessionRecord | None: ...
    def insert_session(
        self, *, booking_id: int, connector_id: int, id_tag: str, started_at: datetime, meter_start_wh: int
    ) -> int: ...
    def session(self, session_id: int) -> SessionRecord | None: ...
    def session_for_booking(self, booking_id: int) -> SessionRecord | None: ...
    def open_session(self, connector_id: int) -> SessionRecord | None: ...
    def sessions(self) -> Sequence[SessionRecord]: ...
    # OCPP 2.0.1: the charger's own transaction ids, mapped onto sessions
    def link_charger_transaction(
        self, session_id: int, charger_id: int, transaction_id: str, *, meter_start_pending: bool = False
    ) -> None:
        """Raises on a second session for one (charger, transactionId): the key is unique."""
        ...

    def settle_meter_start(self, session_id: int, meter_wh: int) -> bool:
        """If the session was opened without a reading, make this first one its meter start (once)."""
        ...

    def session_by_charger_transaction(
        self, charger_id: int, transaction_id: str
    ) -> SessionRecord | None: ...
    def charger_transaction_id(self, session_id: int) -> str | None: ...
    def advance_charger_seq(self, session_id: int, seq_no: int) -> bool:
        """Note a TransactionEvent seqNo; False if one as high was already applied (a replay)."""
        ...

    def advance_meter(self, session_id: int, meter_wh: int, charge_point_id: str) -> MeterAdvance | None:
        """Apply a reading to a CHARGING session on this charger (a register only grows); None if
        there is no such session (unknown, finished, or another charger's: nothing changes)."""
        ...

    def session_charger(self, session_id: int) -> str | None:
        """The charge point id of the charger the session runs on (None: no such session)."""
        ...

    def mark_idle(self, session_id: int, since: datetime | None) -> None:
        """Note when the car stopped drawing power (kept from the first report); None: charging again."""
        ...

    def stop_session(
        self,
        session_id: int,
        *,
        stopped_at: datetime,
        meter_stop_wh: int,
        billed_wh: int,
        cost: int,
        idle_fee: int = 0,
    ) -> None: ...

    # ledger
    def add_entries(self, entries: Sequence[JournalEntry]) -> None: ...
    def entries(
        self, booking_id: int | None = None, account: str | None = None
    ) -> Sequence[JournalEntry]: ...
    # payments outbox
    def enqueue_payment(self, booking_id: int, step: str, amount: int, key: str, now: datetime) -> bool:
        """Queue a gateway step; False if one with this idempotency key is already queued."""
        ...

    def payment(self, key: str) -> OutboxItem | None: ...
    def due_payments(self, now: datetime, limit: int) -> Sequence[OutboxItem]: ...
    def payments(self, status: str | None = None) -> Sequence[OutboxItem]: ...
    def pending_payments_of(self, booking_id: int) -> Sequence[OutboxItem]:
        """One booking's pending outbox steps, by id."""
        ...

    def update_payment(
        self,
        item_id: int,
        *,
        status: str,
        attempts: int,
        next_attempt_at: datetime,
        last_error: str | None,
        done_at: datetime | None = None,
    ) -> None: ...

    def posting_sums(self) -> dict[str, int]:
        """Sum of postings per entry id, straight from storage (for the invariant checker)."""
        ...

    # accounts, hosts' KYC and what hosts edit
    def add_account(
        self,
        *,
        email: str,
        password_hash: str,
        role: str,
        created_at: datetime,
        driver_id: int | None = None,
        host_id: int | None = None,
    ) -> int:
        """Raise InvalidRequest if the (normalised) email already has an account."""
        ...

    def account_by_email(self, email: str) -> AccountRecord | None: ...
    def account(self, account_id: int) -> AccountRecord: ...
    def host(self, host_id: int) -> HostRecord: ...
    def set_host_kyc(self, host_id: int, status: str, at: datetime) -> None: ...
    def verified_hosts(self) -> set[int]: ...
    def chargers_of_host(self, host_id: int) -> Sequence[ChargerView]: ...
    def update_charger(
        self, charger_id: int, *, title: str | None = None, price_per_kwh: int | None = None
    ) -> None: ...
    def access_notes(self, charger_id: int) -> str: ...
    def set_access_notes(self, charger_id: int, notes: str) -> None: ...
    def add_connector(
        self, charger_id: int, connector_no: int, type_: ConnectorType, max_power_w: int
    ) -> None: ...
    def update_connector(
        self,
        charger_id: int,
        connector_no: int,
        *,
        type_: ConnectorType | None = None,
        max_power_w: int | None = None,
    ) -> None: ...
    def remove_connector(self, charger_id: int, connector_no: int) -> None: ...
    def bookings_of(
        self, *, driver_id: int | None = None, host_id: int | None = None
    ) -> Sequence[BookingRecord]: ...


class Store(Protocol):
    def transaction(self) -> AbstractContextManager[Transaction]: ...
    def reading(self) -> AbstractContextManager[Transaction]:
        """A unit of work that only reads (it may skip write locks)."""
        ...

    def create_schema(self) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class HoldResult:
    approved: bool
    reference: str
    reason: str = ""


class GatewayFailure(Exception):
    """A payment call that did not happen: the provider refused it, failed or could not be reached.

    Distinct from a card decline (a normal answer, HoldResult.approved = False). The payments outbox
    retries these with backoff and dead-letters them after too many attempts."""


class ProviderUnavailable(GatewayFailure):
    """An outage or timeout: worth retrying later."""


class HoldExpired(GatewayFailure):
    """The authorisation lapsed before capture (Stripe cancels uncaptured ones after 7 days)."""


class PaymentGateway(Protocol):
    """Card payments with manual capture. Every call carries an idempotency key."""

    def authorize(self, *, amount: int, customer: str, idempotency_key: str) -> HoldResult: ...
    def capture(self, *, reference: str, amount: int, idempotency_key: str) -> None: ...
    def release(self, *, reference: str, idempotency_key: str) -> None: ...


class Lease(Protocol):
    @property
    def fencing_token(self) -> int: ...


class LockManager(Protocol):
    """Advisory per-key locks. An optimisation in front of the database guarantee, never the guard."""

    def hold(self, key: str, ttl_ms: int) -> AbstractContextManager[Lease | None]: ...


class Durability(Protocol):
    """When commits reach the disk. Writes made inside `deferred()` may commit without waiting for
    the disk; `flushed()` returns once every commit made before the call is durable. Whoever
    acknowledges such a write (an OCPP CALLRESULT) awaits `flushed()` first."""

    def deferred(self) -> AbstractContextManager[None]: ...
    async def flushed(self) -> None: ...
