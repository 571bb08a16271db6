"""The ports services depend on. Adapters implement them; tests swap in fakes or in-memory backends."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from chargeshare.domain.availability import WeeklyWindow
from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.charger import BootPolicy, ChargerSpec, ChargerStatus, ConnectorStatus, ConnectorType
from chargeshare.domain.command_backoff import Backoff, OwedKind, Refusals
from chargeshare.domain.dynamic_pricing import GridReading, HostPricing, Price
from chargeshare.domain.fleet import (
    BlockRule,
    ContractPolicy,
    FleetAccount,
    FleetContract,
    InvoiceLine,
    IssuedInvoice,
    Occurrence,
    SeenRequest,
)
from chargeshare.domain.grid_limits import Feeder, FlexEvent, Plan, Scope, Site
from chargeshare.domain.grid_settlement import GridSettlement
from chargeshare.domain.held_quotes import HeldQuote
from chargeshare.domain.ledger import JournalEntry
from chargeshare.domain.search import SearchQuery
from chargeshare.domain.seller_details import SellerDetails
from chargeshare.domain.smart_charge_points import SmartSettings
from chargeshare.domain.tokens import IdToken, TokenStatus, TokenType
from chargeshare.domain.v2g import ExportBuyer, ExportRecord, ExportTerms
from chargeshare.ocpp import OcppVersion
from chargeshare.services.records import (
    AccountRecord,
    BookingQuote,
    BookingRecord,
    ChargerFile,
    ChargerReport,
    ChargerView,
    DriverRecord,
    HostRecord,
    MeterAdvance,
    OutboxItem,
    SecurityEvent,
    SessionRecord,
    StoredCredentials,
)


class Accounts(Protocol):
    """Hosts, drivers, their sign-in accounts, hosts' KYC status and their seller details."""

    def add_host(self, name: str) -> int: ...
    def add_driver(self, name: str, id_tag: str) -> int: ...
    def driver(self, driver_id: int) -> DriverRecord: ...
    def driver_by_tag(self, id_tag: str) -> DriverRecord | None: ...
    def host(self, host_id: int) -> HostRecord: ...
    def set_host_kyc(self, host_id: int, status: str, at: datetime) -> None: ...
    def verified_hosts(self) -> set[int]: ...
    def set_driver_kyc(self, driver_id: int, status: str, at: datetime) -> None:
        """Record the operator's check of the driver's payout details (NotFound for no driver)."""
        ...

    def driver_kyc(self, driver_id: int) -> str:
        """pending (never checked), verified or rejected; NotFound for no driver."""
        ...

    def verified_drivers(self) -> set[int]:
        """Drivers whose payout details are verified: only they are paid export credits."""
        ...

    def lock_host(self, host_id: int) -> None:
        """Hold the host's row until this unit of work ends: one payout of a host at a time."""
        ...

    def lock_driver(self, driver_id: int) -> None:
        """Hold the driver's row until this unit of work ends: one export payout at a time."""
        ...

    def add(
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

    def by_email(self, email: str) -> AccountRecord | None: ...
    def get(self, account_id: int) -> AccountRecord: ...
    def all(self) -> Sequence[AccountRecord]:
        """Every account, by id (for operators)."""
        ...

    def hosts(self) -> Sequence[HostRecord]:
        """Every host with its KYC status, by id."""
        ...

    def seller_details(self, host_id: int) -> SellerDetails | None:
        """What the host gave for HMRC's platform reporting, or None; NotFound for an unknown host."""
        ...

    def set_seller_details(self, host_id: int, details: SellerDetails, at: datetime) -> None:
        """Keep the host's details (already checked), replacing any before; NotFound for an unknown host."""
        ...

    def all_seller_details(self) -> dict[int, SellerDetails]:
        """Every host's details that are on file, by host id."""
        ...


class Chargers(Protocol):
    """Chargers, their connectors, calendars and access notes, and the map search."""

    def add(self, spec: ChargerSpec) -> int: ...
    def get(self, charge_point_id: str) -> ChargerView: ...
    def by_id(self, charger_id: int) -> ChargerView: ...
    def all(self) -> Sequence[ChargerView]: ...
    def of_host(self, host_id: int) -> Sequence[ChargerView]: ...
    def boot_policy(self, charge_point_id: str) -> BootPolicy:
        """How its BootNotification is answered; raises NotFound for an unregistered charger."""
        ...

    def set_boot_policy(self, charger_id: int, policy: BootPolicy) -> None:
        """Anything but Accepted also takes the charger out of service (status registered)."""
        ...

    def status_and_connector(
        self, charge_point_id: str, connector_no: int
    ) -> tuple[ChargerStatus, int | None]:
        """The charger's status and the id of its connector `connector_no` (None if it has no such
        connector: OCPP's 0 is the charger itself); raises NotFound for an unregistered charger."""
        ...

    def connector_state(
        self, charge_point_id: str, connector_no: int
    ) -> tuple[ChargerStatus, int | None, ConnectorStatus | None]:
        """`status_and_connector`, and that connector's last reported status (None with no such
        connector)."""
        ...

    def search(self, query: SearchQuery) -> Sequence[ChargerView]:
        """Chargers matching the query: by id for a box, nearest first (then id) for a radius."""
        ...

    def set_availability(self, charger_id: int, windows: Sequence[WeeklyWindow]) -> None: ...
    def availability(self, charger_ids: Sequence[int]) -> dict[int, list[WeeklyWindow]]: ...
    def set_status(
        self,
        charge_point_id: str,
        status: ChargerStatus,
        at: datetime,
        ocpp_version: OcppVersion | None = None,
        *,
        expected: ChargerStatus | None = None,
        seen_before: datetime | None = None,
    ) -> bool:
        """Raises NotFound for an unregistered charger. With `expected`, a compare-and-set: False
        (nothing changed) unless the charger's status was `expected` (and, with `seen_before`, its
        last seen is before that: a charger heard since is left as it is)."""
        ...

    def touch(self, charge_point_id: str, at: datetime) -> None:
        """Set last seen; raises NotFound for an unregistered charger."""
        ...

    def touch_many(self, stamps: Mapping[str, datetime]) -> list[str]:
        """Set each charger's last seen, unless it is marked offline or was stamped later (a stamp
        written behind never sets it back): the ids left unwritten, those not registered, those
        offline (whose next frame must bring them back, not a stamp) and those heard later, through
        another link."""
        ...

    def set_password(self, charge_point_id: str, password_hash: str | None) -> None: ...
    def credentials(self, charge_point_id: str) -> StoredCredentials:
        """Its registration and stored password hash; raises NotFound for an unregistered charger."""
        ...

    def has_bookings(self, charger_id: int) -> bool:
        """Any booking ever made on its connectors (which keep it from being removed)."""
        ...

    def remove(self, charge_point_id: str) -> None:
        """Delete a charger that has never been booked, with its reports (raise InvalidRequest
        otherwise)."""
        ...

    def silent(self, seen_before: datetime) -> Sequence[ChargerView]:
        """Online chargers last seen before `seen_before`."""
        ...

    def set_connector_status(
        self, charge_point_id: str, connector_no: int, status: ConnectorStatus, at: datetime
    ) -> bool:
        """Set connector `connector_no`'s status (0: every connector of the charger) as reported at
        `at`, unless the connector has a status from a later report: a connector keeps the status
        of its latest report. True if any connector took it."""
        ...

    def connector_statuses(self, connector_ids: Sequence[int]) -> dict[int, ConnectorStatus]:
        """The status of each of these connectors, in one query (ids that do not exist are left out)."""
        ...

    def mark_available(
        self, connector_id: int, at: datetime, *, unless_reported_after: datetime | None = None
    ) -> bool:
        """Note when the connector was last reported free, at `at` (the latest report's time
        stands); with `unless_reported_after`, not if the connector has a status from a report
        later than that (a free report that is not a status report). True if noted."""
        ...

    def available_at(self, connector_id: int) -> datetime | None:
        """When the connector was last reported Available (None: never, or no such connector)."""
        ...

    def update(
        self, charger_id: int, *, title: str | None = None, price_per_kwh: int | None = None
    ) -> None: ...
    def access_notes(self, charger_id: int) -> str: ...
    def access_notes_of(self, charger_ids: Sequence[int]) -> dict[int, str]:
        """The access notes of those chargers that have any, by charger id (one read for a list)."""
        ...

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


class Bookings(Protocol):
    def add(
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
        """Insert a REQUESTED booking; raise BookingConflict if a live booking overlaps it, and
        StaleFencingToken if a later lock holder has already written for this connector."""
        ...

    def remember_request(
        self, driver_id: int, key: str, fingerprint: str, booking_id: int, at: datetime
    ) -> bool:
        """Record that the driver's request under this Idempotency-Key made the booking; False (and
        nothing written) if the key is already taken by another of the driver's requests."""
        ...

    def request_seen(self, driver_id: int, key: str) -> tuple[str, int] | None:
        """The fingerprint and booking of the driver's request under this key, if there was one."""
        ...

    def get(self, booking_id: int) -> BookingRecord: ...
    def lock(self, booking_id: int) -> None:
        """Hold the booking's row until commit, as a change of its status holds it: a read of it
        after this sees any change that committed before (none for an unknown booking)."""
        ...

    def count_by_status(self) -> dict[str, int]:
        """How many bookings are in each status (for metrics)."""
        ...

    def all(self, status: BookingStatus | None = None) -> Sequence[BookingRecord]: ...
    def of(self, *, driver_id: int | None = None, host_id: int | None = None) -> Sequence[BookingRecord]:
        """One party's bookings: a driver's own, or those on a host's chargers (newest first)."""
        ...

    def on_charger(self, charger_id: int, statuses: Collection[BookingStatus]) -> Sequence[BookingRecord]:
        """The bookings on one charger's connectors in one of `statuses` (newest first): what a
        change to that charger concerns, without reading its host's whole history."""
        ...

    def starting_by(
        self, status: BookingStatus, starts_by: datetime, *, reservation: str | None = None
    ) -> Sequence[BookingRecord]:
        """Bookings in `status` starting at or before `starts_by` (and in this reservation state if
        given), by id: what the housekeeping sweep is due to act on, without reading the rest."""
        ...

    def update(
        self,
        booking_id: int,
        status: BookingStatus,
        *,
        ends_at: datetime | None = None,
        payment_ref: str | None = None,
        fee: int | None = None,
        cancelled_by: str | None = None,
        expected: BookingStatus | None = None,
    ) -> bool:
        """Change the booking; with `expected`, only if it is still in that status (compare-and-set:
        False when another request changed it first). NotFound if there is no such booking."""
        ...

    def fence_of(self, connector_id: int) -> int:
        """The highest lock fencing token that has written a booking for this connector (0: none)."""
        ...

    def set_reservation(
        self,
        booking_id: int,
        state: str,
        *,
        expected: str | None = None,
        status: BookingStatus | None = None,
    ) -> bool:
        """Set the reservation state; with `expected`, only if it is still that (compare-and-set),
        and with `status` too, only while the booking is in that status, judged by the same write."""
        ...

    def mark_connector_held(self, booking_id: int) -> None:
        """Record that the booking's connector was found held (by another car, or unusable) after
        its start. It stays so: the no-show rule reads it after the connector is free again."""
        ...

    def reservations_on(
        self, charger_id: int, state: str, status: BookingStatus = BookingStatus.CONFIRMED
    ) -> Sequence[BookingRecord]:
        """The charger's bookings in `status` (confirmed unless said) whose reservation is in
        `state`, by id."""
        ...

    def for_start(
        self,
        connector_id: int,
        driver_id: int,
        at: datetime,
        status: BookingStatus = BookingStatus.CONFIRMED,
    ) -> BookingRecord | None:
        """The driver's booking in `status` (confirmed unless said) on this connector not yet ended
        at `at` (earliest first)."""
        ...

    def reservations_owed(self) -> Sequence[tuple[int, str]]:
        """(booking id, charge point id), by booking id, of every reservation a charger is owed a
        call on: confirmed bookings still "sent" (ReserveNow unanswered) and cancelled or expired
        ones "sent" or "accepted" (the charger may hold them: CancelReservation unanswered)."""
        ...

    def held_periods(self, connector_id: int, since: datetime) -> Sequence[tuple[datetime, datetime]]:
        """The periods (start, end) live bookings hold on the connector that end after `since`, by
        start. On PostgreSQL read under the connector's row lock, as a booking's write takes it, so
        no booking gets in before this unit of work's own (SQLite's writes are serialized)."""
        ...


class Sessions(Protocol):
    """Charging sessions (a session id is the OCPP 1.6 transactionId) and, for OCPP 2.0.1, the
    charger's own transaction ids mapped onto them."""

    def add(
        self, *, booking_id: int, connector_id: int, id_tag: str, started_at: datetime, meter_start_wh: int
    ) -> int: ...
    def get(self, session_id: int) -> SessionRecord | None: ...
    def all(self) -> Sequence[SessionRecord]: ...
    def by_start_key(
        self, connector_id: int, id_tag: str, meter_start: int, started_at: datetime
    ) -> SessionRecord | None: ...
    def for_booking(self, booking_id: int) -> SessionRecord | None: ...
    def for_bookings(self, booking_ids: Sequence[int]) -> dict[int, SessionRecord]:
        """The sessions of those bookings that have one, by booking id (one read for a list)."""
        ...

    def open_on(self, connector_id: int) -> SessionRecord | None:
        """The newest session still charging on this connector."""
        ...

    def on_connector(
        self, charge_point_id: str, connector_no: int
    ) -> tuple[ChargerStatus, int | None, SessionRecord | None]:
        """In one read: the charger's status, its connector `connector_no`'s id (None: no such
        connector) and the newest session charging on that connector (`open_on`). Raises NotFound
        for an unknown charger."""
        ...

    def charger_of(self, session_id: int) -> str | None:
        """The charge point id of the charger the session runs on (None: no such session)."""
        ...

    def charge_points_of(self, session_ids: Sequence[int]) -> dict[int, str]:
        """`charger_of` for a list: the charge point id of each session found, by session id."""
        ...

    def link_charger_transaction(
        self, session_id: int, charger_id: int, transaction_id: str, *, meter_start_pending: bool = False
    ) -> None:
        """Raises on a second session for one (charger, transactionId): the key is unique."""
        ...

    def settle_meter_start(self, session_id: int, meter_wh: int) -> bool:
        """If the session was opened without a reading, make this first one its meter start (once,
        and only while it charges: a stopped session's bill stays as it was stopped)."""
        ...

    def awaits_first_reading(self, session_id: int) -> bool:
        """True while a session opened without a reading has had none since (its start is unknown)."""
        ...

    def by_charger_transaction(self, charger_id: int, transaction_id: str) -> SessionRecord | None: ...
    def running_elsewhere(self, transaction_id: str, charger_id: int | None) -> int | None:
        """A session still charging under this (2.0.1) transactionId on a charger other than
        `charger_id` (any charger when None); None if there is none."""
        ...

    def charger_transaction_id(self, session_id: int) -> str | None: ...
    def advance_charger_seq(self, session_id: int, seq_no: int) -> bool:
        """Note a TransactionEvent seqNo; False if one as high was already applied (a replay)."""
        ...

    def charger_seq(self, session_id: int) -> int | None:
        """The highest TransactionEvent seqNo applied to the session (None: none yet)."""
        ...

    def advance_meter(
        self, session_id: int, meter_wh: int, charge_point_id: str, at: datetime
    ) -> MeterAdvance | None:
        """Apply a reading to a CHARGING session on this charger (a register only grows); None if
        there is no such session (unknown, finished, or another charger's: nothing changes). A
        session already reported free counts as freed `at` (its stop is queued behind the reading)."""
        ...

    def mark_idle(self, session_id: int, since: datetime | None) -> None:
        """Note when the car stopped drawing power (kept from the first report); None: charging again."""
        ...

    def mark_freed(self, session_id: int, at: datetime | None) -> None:
        """Note when the charger reported the session's connector free (kept from the first report);
        None: it is in use again."""
        ...

    def freed_before(self, cutoff: datetime) -> Sequence[SessionRecord]:
        """Sessions still charging whose connector was reported free before `cutoff`, by id."""
        ...

    def held_by_another(self, connector_id: int, booking_id: int, start: datetime, end: datetime) -> bool:
        """Whether a session of another booking than `booking_id` held the connector at some
        instant of [start, end): started before `end`, and open or stopped after `start`."""
        ...

    def stops_owed(self) -> Sequence[tuple[int, str]]:
        """(session id, charge point id), by session id, of sessions still charging that have used
        the energy their booking holds: their charger is owed a stop."""
        ...

    def stop(
        self,
        session_id: int,
        *,
        stopped_at: datetime,
        meter_stop_wh: int,
        billed_wh: int,
        cost: int,
        idle_fee: int = 0,
        unmetered: bool = False,
        closed_lost: bool = False,
    ) -> bool:
        """Stop a charging session with its bill (compare-and-set on its status): False, changing
        nothing, when it is not charging any more (or does not exist). `closed_lost`: closed by the
        lost-stop sweep, not by its charger's stop (only such a session takes a late stop)."""
        ...

    def unmetered(self) -> Sequence[SessionRecord]:
        """Stopped sessions billed without a measurement, by id (for operators)."""
        ...

    def rebill(
        self,
        session_id: int,
        *,
        billed_stop_wh: int,
        meter_stop_wh: int,
        billed_wh: int,
        cost: int,
        at: datetime,
        export_wh: int | None = None,
    ) -> bool:
        """Bill a stopped session on a later stop reading (compare-and-set on the stop reading it
        was billed on, `billed_stop_wh`), measured now (not unmetered), noting when (`at`) and the
        late stop's export reading taken with it (kept if higher than any taken before): False,
        changing nothing, if it is not billed on `billed_stop_wh` any more, or the stop brings
        nothing new (its reading not above the billed one, its export none above any taken)."""
        ...

    def record_late_stop(
        self,
        session_id: int,
        register_wh: int,
        at: datetime,
        export_wh: int | None = None,
        *,
        billed_stop_wh: int,
    ) -> bool:
        """Keep a stop that came after the session was stopped if it brings something new: its
        reading above both the billed one and any kept (then kept), or its export reading (None:
        none above the credited one) above any taken (then kept, left uncredited). Each keeps its
        highest, so a later stop without an export reading loses none. False, changing nothing,
        otherwise, or when the session is no longer billed on `billed_stop_wh` (the reading the
        caller decided against)."""
        ...

    def late_stops(self, after: int, limit: int) -> Sequence[SessionRecord]:
        """Sessions a late stop billed in full or left a reading on, by id, from the first above
        `after`, at most `limit` (for operators)."""
        ...


class Ledger(Protocol):
    def add(self, entries: Sequence[JournalEntry]) -> None:
        """Write entries; one whose id is already written is skipped (a step done again writes the
        same ids). A second resolution of one hold is refused."""
        ...

    def entries(self, booking_id: int | None = None, account: str | None = None) -> Sequence[JournalEntry]:
        """Entries (of a booking, touching an account), by time, then in the order written."""
        ...

    def entries_of(self, booking_ids: Sequence[int]) -> dict[int, list[JournalEntry]]:
        """Each booking's entries, as `entries` orders them, by booking id; bookings without any are
        left out."""
        ...

    def posting_sums(self) -> dict[str, int]:
        """Sum of postings per entry id, straight from storage (for the invariant checker)."""
        ...


class PaymentsOutbox(Protocol):
    """Payment steps to run against the gateway, each under its idempotency key."""

    def enqueue(
        self,
        booking_id: int,
        step: str,
        amount: int,
        key: str,
        now: datetime,
        *,
        due_at: datetime | None = None,
        claimed_by: str | None = None,
    ) -> bool:
        """Queue a gateway step (due at `due_at`, default now); False if one with this idempotency key
        is already queued. With `claimed_by`, that worker holds it until it is due."""
        ...

    def claim_due(
        self, now: datetime, limit: int, worker: str, lease_until: datetime
    ) -> Sequence[OutboxItem]:
        """Claim up to `limit` pending steps due by `now` that nobody holds (or whose lease has run
        out), oldest first: each is `worker`'s until `lease_until`. Steps another worker is claiming
        at the same moment are skipped, never waited for."""
        ...

    def claim_of(
        self, booking_id: int, now: datetime, worker: str, lease_until: datetime
    ) -> Sequence[OutboxItem]:
        """Claim the booking's pending steps that nobody holds, due or not (the caller works them now)."""
        ...

    def finish(
        self,
        item_id: int,
        worker: str,
        *,
        status: str,
        attempts: int,
        next_attempt_at: datetime,
        last_error: str | None,
        done_at: datetime | None = None,
        reference: str | None = None,
        declined: bool = False,
    ) -> bool:
        """Record how a step `worker` holds went and let it go; False if the claim was lost (its
        lease ran out and another worker took it), in which case nothing is written. `declined`:
        the card declined this attempt's authorisation, or it lapsed (counted in `declines`)."""
        ...

    def reprice_unworked(self, key: str, amount: int) -> bool:
        """Change the amount of a pending step no worker has ever claimed (so no gateway call was
        made under its key): False, changing nothing, for one claimed, tried (a last error kept) or
        finished."""
        ...

    def get(self, key: str) -> OutboxItem | None: ...
    def due(self, now: datetime, limit: int) -> Sequence[OutboxItem]: ...
    def next_claimable_at(self) -> datetime | None:
        """The earliest moment a pending step may be claimed (due, and any lease on it lapsed)."""
        ...

    def count_by_status(self) -> dict[str, int]:
        """How many steps are pending, done or dead (for metrics)."""
        ...

    def all(self, status: str | None = None) -> Sequence[OutboxItem]: ...
    def pending_of(self, booking_id: int) -> Sequence[OutboxItem]:
        """One booking's pending steps, by id."""
        ...

    def update(
        self,
        item_id: int,
        *,
        expected: str,
        expected_attempts: int,
        now: datetime,
        status: str,
        attempts: int,
        next_attempt_at: datetime,
        last_error: str | None,
        done_at: datetime | None = None,
    ) -> bool:
        """Set a step's state (an operator's reconcile), only if it is still `expected` with
        `expected_attempts` and no worker's lease holds it at `now` (compare-and-set: a worker's
        attempt since the read counts one more); any lapsed claim is let go."""
        ...


class Notifications(Protocol):
    """Messages to hosts, kept until a sender delivers them."""

    def add(self, host_id: int, kind: str, subject: str, body: str, at: datetime) -> None: ...
    def all(self, host_id: int | None = None) -> Sequence[dict[str, object]]: ...


class SecurityLog(Protocol):
    """What chargers did that they must not, for the operator."""

    def record(
        self, charge_point_id: str, kind: str, detail: str, at: datetime, *, source: str = "backend"
    ) -> None:
        """`source` "charger": the charger reported it (SecurityEventNotification); `at` is then
        its own timestamp."""
        ...

    def all(self, charge_point_id: str | None = None) -> Sequence[SecurityEvent]: ...


class ChargerReports(Protocol):
    """What registered chargers report about themselves, kept as received (append only)."""

    def add(
        self,
        charger_id: int,
        action: str,
        summary: str,
        body: Mapping[str, Any],
        *,
        received_at: datetime,
        reported_at: datetime | None = None,
    ) -> int: ...
    def of(self, charger_id: int, actions: Sequence[str] = ()) -> Sequence[ChargerReport]:
        """The charger's reports (only these actions, if given), oldest first."""
        ...


class IdTokens(Protocol):
    """Drivers' id tokens (RFID cards and other tokens), and the chargers whose hosts let any valid
    token charge without a booking (walk-in, at a price of their own)."""

    def add(
        self,
        *,
        driver_id: int,
        value: str,
        type_: TokenType,
        status: TokenStatus,
        expires_at: datetime | None,
        group_id: str | None,
        master_pass: bool,
        created_at: datetime,
    ) -> int:
        """Raise InvalidRequest if the value is already a token, or another driver's booking id tag;
        NotFound for an unknown driver."""
        ...

    def get(self, token_id: int) -> IdToken:
        """Raises NotFound."""
        ...

    def by_value(self, value: str) -> IdToken | None: ...
    def set_status(self, token_id: int, status: TokenStatus) -> None:
        """Raises NotFound."""
        ...

    def all(self, driver_id: int | None = None) -> Sequence[IdToken]:
        """Every token (one driver's, if given), by id."""
        ...

    def set_walk_in(self, charger_id: int, price_per_kwh: int | None) -> None:
        """Let walk-in tokens charge on the charger at this price (None: bookings only)."""
        ...

    def walk_in_price(self, charger_id: int) -> int | None: ...


class ChargerFiles(Protocol):
    """Firmware images served to chargers and logs uploaded by them (`ChargerFile`)."""

    def add(
        self,
        token: str,
        kind: str,
        charge_point_id: str | None,
        name: str,
        at: datetime,
        content: bytes | None,
    ) -> ChargerFile:
        """A file with its content (published), or a slot awaiting it (`content` None)."""
        ...

    def by_token(self, token: str) -> ChargerFile:
        """Raises NotFound."""
        ...

    def content(self, token: str) -> bytes | None:
        """Its bytes; None while a slot waits. Raises NotFound."""
        ...

    def fill(self, token: str, content: bytes, sha256: str, at: datetime) -> bool:
        """Put an upload into its slot, once: False when it already holds one."""
        ...

    def of_charger(self, charge_point_id: str) -> Sequence[ChargerFile]:
        """A charger's logs, oldest first."""
        ...

    def firmware(self) -> Sequence[ChargerFile]:
        """Every firmware image published, oldest first."""
        ...


class SmartCharging(Protocol):
    """Chargers' settings under the UK's smart charging regulations (the host's choices, the DSR
    flag) and the bookings whose driver overrode them."""

    def settings(self, charger_id: int) -> SmartSettings | None:
        """The charger's settings; None when nobody has set any (its own defaults stand)."""
        ...

    def save(self, charger_id: int, settings: SmartSettings, at: datetime) -> None:
        """Replace the charger's settings; NotFound for an unknown charger."""
        ...

    def configured(self) -> dict[int, SmartSettings]:
        """Every charger's settings that were set, by charger id."""
        ...

    def add_override(self, booking_id: int, at: datetime) -> None:
        """The booking's driver overrode the delay and default charging hours (NotFound for an
        unknown booking; a second time changes nothing)."""
        ...

    def overridden(self, booking_ids: Sequence[int]) -> set[int]:
        """Those of `booking_ids` whose driver overrode them."""
        ...

    def hold_override_owed(self, booking_id: int, session_id: int) -> bool:
        """Whether the booking's override is owed to its session `session_id` (there, and not taken
        by it); the override's record is held until commit, as `override_taken` holds it."""
        ...

    def override_taken(self, booking_id: int, session_id: int) -> None:
        """The charger of the booking's session `session_id` took its override profile."""
        ...

    def overrides_owed(self) -> Sequence[tuple[int, str]]:
        """(session id, charge point id) of every open session on an overridden booking whose
        charger has not taken its override profile, and which is the newest open session on its
        connector (the one `open_on` finds): by session id."""
        ...


class CommandRefusals(Protocol):
    """How often each session's charger refused a command owed to it, and when it is asked again
    (chargeshare/domain/command_backoff.py): one record per session and kind."""

    def of(self, kind: OwedKind, session_ids: Sequence[int]) -> dict[int, Refusals]:
        """The records of those of `session_ids` with one for `kind`, by session id."""
        ...

    def refused(
        self, session_id: int, kind: OwedKind, at: datetime, backoff: Backoff
    ) -> tuple[Refusals, bool]:
        """One more refusal of `kind` at `at`, counted by the store itself so that two recorded at
        once by two processes both count; the record now, its retry time on `backoff` for the count
        the store holds, and whether this refusal gave it up (the record before was still asked,
        whatever limit it was counted on). NotFound for an unknown session."""
        ...

    def unanswered(self, session_id: int, kind: OwedKind, at: datetime, backoff: Backoff) -> Refusals:
        """One more send of `kind` unanswered at `at`, counted as `refused` counts; the record now,
        its retry time on `backoff` (one given up stays so). NotFound for an unknown session."""
        ...

    def clear(self, session_id: int, kind: OwedKind) -> None:
        """The charger accepted: forget the session's record for `kind` (none: nothing changes)."""
        ...

    def prune(self, limit: int) -> int:
        """Forget at most `limit` records nothing is owed for any more (their session stopped, or
        its charger took the command); how many were forgotten."""
        ...


class Pricing(Protocol):
    """Hosts' pricing settings (flat or dynamic within their bounds) and the price each booking was
    quoted when it was made."""

    def settings(self, host_id: int) -> HostPricing | None:
        """The host's settings; None when the host set none (flat: each charger's listed price)."""
        ...

    def save(self, host_id: int, settings: HostPricing, at: datetime) -> None:
        """Replace the host's settings; NotFound for an unknown host."""
        ...

    def add_quote(self, booking_id: int, quote: Price, at: datetime) -> None:
        """Fix the booking's quoted price (NotFound for an unknown booking; a booking is quoted
        once: a second quote is refused with InvalidRequest)."""
        ...

    def quotes(self, booking_ids: Sequence[int] | None = None) -> dict[int, BookingQuote]:
        """The quotes of `booking_ids` that have one (every quote when None), by booking id."""
        ...

    def hold(self, quote: HeldQuote) -> HeldQuote:
        """Keep a quote issued to a driver (its `quote_id` and `booking_id` are ignored); returns it
        with its id. NotFound for an unknown driver or charger."""
        ...

    def held(self, quote_id: int) -> HeldQuote:
        """The held quote; NotFound if there is none."""
        ...

    def use_held(self, quote_id: int, booking_id: int) -> bool:
        """Mark the quote used by the booking, if no booking has used it: one conditional write, so
        of two units of work using one quote at once exactly one gets True."""
        ...

    def held_used_by(self, booking_ids: Sequence[int] | None = None) -> dict[int, HeldQuote]:
        """The held quotes `booking_ids` were made with (every used one when None), by booking id."""
        ...

    def held_ids(self) -> list[int]:
        """The ids of every held quote kept, in order."""
        ...

    def delete_expired_held(self, expired_before: datetime, limit: int) -> int:
        """Delete at most `limit` (at least 1) held quotes that no booking used and that expired
        before `expired_before`; how many. A quote another unit of work holds is passed over, not
        waited for, so sweeps in several processes at once share the work."""
        ...


class Fleets(Protocol):
    """Fleet accounts, their block contracts, the bookings those made, and their monthly invoices."""

    def add_account(self, name: str, driver_id: int, created_at: datetime) -> int:
        """A fleet charging as `driver_id`; InvalidRequest if that driver is another fleet's."""
        ...

    def account(self, fleet_id: int) -> FleetAccount:
        """NotFound if there is no such fleet."""
        ...

    def account_of_driver(self, driver_id: int) -> FleetAccount | None: ...
    def accounts(self) -> Sequence[FleetAccount]: ...
    def add_contract(
        self,
        fleet_id: int,
        rule: BlockRule,
        policy: ContractPolicy,
        connector_ids: Sequence[int],
        created_at: datetime,
    ) -> int: ...
    def contract(self, contract_id: int) -> FleetContract:
        """NotFound if there is no such contract."""
        ...

    def contracts_of(self, fleet_id: int) -> Sequence[FleetContract]: ...
    def add_occurrence(self, booking_id: int, contract_id: int, fleet_id: int) -> None: ...
    def occurrence(self, booking_id: int) -> Occurrence | None:
        """The block occurrence this booking is, or None for any other booking."""
        ...

    def occurrences(
        self, *, fleet_id: int | None = None, contract_id: int | None = None
    ) -> Sequence[Occurrence]:
        """Occurrences by booking id, of one fleet or contract (or all)."""
        ...

    def add_invoice(
        self, fleet_id: int, month: str, lines: Sequence[InvoiceLine], total: int, at: datetime
    ) -> int | None:
        """Issue the month's invoice with its lines; None (and nothing written) if that month's is
        already issued, or one of its lines is already billed on another."""
        ...

    def invoice(self, fleet_id: int, month: str) -> IssuedInvoice | None: ...
    def invoices(self, fleet_id: int | None = None) -> Sequence[IssuedInvoice]:
        """By fleet and month."""
        ...

    def lines_of(self, invoice_id: int) -> Sequence[InvoiceLine]: ...
    def billed_entries(self, fleet_id: int) -> set[str]:
        """Ids of the ledger entries already billed on one of the fleet's invoices."""
        ...

    def record_payment(self, invoice_id: int, paid: int, at: datetime, *, expected: int) -> bool:
        """Set what has been paid of the invoice, if it is still `expected` (compare-and-set)."""
        ...

    def claim_request(self, fleet_id: int, kind: str, key: str, fingerprint: str, at: datetime) -> bool:
        """Claim the fleet's Idempotency-Key for a request of `kind` in this unit of work; False if
        an earlier request holds it (on PostgreSQL, one still being made is waited for)."""
        ...

    def answer_request(self, fleet_id: int, kind: str, key: str, ref_id: int, value: int | None) -> None:
        """What the claimed request made."""
        ...

    def request_seen(self, fleet_id: int, kind: str, key: str) -> SeenRequest | None: ...


class Grid(Protocol):
    """Site and feeder supply limits (chargeshare/domain/grid_limits.py): feeders, hosts' sites, the
    chargers on each site, flexibility events, and each connector's limit as last decided."""

    def add_feeder(self, name: str, limit_w: int) -> Feeder:
        """InvalidRequest for a limit of 0 W or less."""
        ...

    def feeders(self) -> Sequence[Feeder]:
        """Every feeder, by id."""
        ...

    def add_site(
        self, host_id: int, name: str, limit_w: int, house_load_w: int, feeder_id: int | None
    ) -> Site:
        """NotFound for an unknown host or feeder; InvalidRequest for a limit that means nothing."""
        ...

    def sites(self, host_id: int | None = None) -> Sequence[Site]:
        """Every site (or one host's), by id."""
        ...

    def set_house_load(self, site_id: int, house_load_w: int, measured_at: datetime) -> tuple[Site, bool]:
        """A meter's reading, measured at `measured_at`: written unless the one in force was measured
        later (one compare and set, so two writers at once keep the newer). The site as it stands
        after, and whether this reading is the one in force. NotFound for an unknown site."""
        ...

    def place(self, charger_id: int, site_id: int | None) -> None:
        """Put a charger on a site (None: on none); NotFound for an unknown charger or site."""
        ...

    def members(self) -> dict[int, int]:
        """Each charger on a site: charger id -> site id."""
        ...

    def add_flex_event(
        self, scope: Scope, target_id: int, limit_w: int, starts_at: datetime, ends_at: datetime, at: datetime
    ) -> FlexEvent:
        """NotFound for an unknown site or feeder; InvalidRequest for an empty window."""
        ...

    def flex_events(self, ending_after: datetime | None = None) -> Sequence[FlexEvent]:
        """Flexibility events (those ending after `ending_after`), by start then id."""
        ...

    def deciding(self) -> None:
        """Take the turn to decide connectors' limits until the unit of work ends: one decision at a
        time, each reading what the one before it committed."""
        ...

    def allocations(self) -> dict[int, int]:
        """Each connector's limit in W as last decided, by connector id."""
        ...

    def plans(self) -> dict[int, Plan]:
        """Each connector's decided limit with the later steps it carries, in time order, by
        connector id: read at once, so a limit is never paired with another decision's steps."""
        ...

    def save_allocations(
        self,
        limits_w: Mapping[int, int | None],
        at: datetime,
        planned: Mapping[int, Sequence[tuple[datetime, int]]] | None = None,
    ) -> None:
        """Replace these connectors' limits (None: the connector has none any more), each with its
        later steps in `planned` or none."""
        ...

    def owe(self, charger_ids: Sequence[int], at: datetime) -> dict[int, int]:
        """A new decision for each charger, owed until acknowledged: charger id -> its number."""
        ...

    def delivery(self, charger_id: int) -> tuple[int, int] | None:
        """(latest decision, latest acknowledged) for the charger; None: never decided for."""
        ...

    def delivered(self, charger_id: int, decision: int, at: datetime) -> None:
        """The charger acknowledged `decision` at `at` (an older one than already acknowledged: no
        change). An older one than the latest: it owes the rest since `at`. The latest: it owes
        none, and each of its connectors now holds at most its plan's highest limit (`held`). Takes
        the deciding turn first (`deciding`): it writes what a decision writes, in the other order."""
        ...

    def owing(self) -> dict[int, datetime]:
        """Each charger owing a decision: since when (its first decision unacknowledged, or its
        latest acknowledgement of an older one)."""
        ...

    def held(self) -> dict[int, int]:
        """The most each connector may hold in W: the highest limit of every plan decided since its
        charger last acknowledged all it was sent (connectors whose charger never has are absent)."""
        ...

    def owed(self, decided_before: datetime) -> list[int]:
        """Chargers whose latest decision, made at or before `decided_before`, is unacknowledged."""
        ...


class V2g(Protocol):
    """V2G export (chargeshare/domain/v2g.py): each booking's export terms and its metered export."""

    def set_terms(self, terms: ExportTerms) -> None:
        """Set (or replace) a booking's terms; NotFound for an unknown booking."""
        ...

    def terms(self, booking_id: int) -> ExportTerms | None: ...

    def all_terms(self) -> Sequence[ExportTerms]:
        """Every booking's terms, by booking id."""
        ...

    def record(self, booking_id: int) -> ExportRecord | None: ...

    def lock_export(self, booking_id: int) -> None:
        """Hold the booking's export until this unit of work ends (its terms' row): writers of one
        booking's export record take turns, each reading the record the one before it committed.
        A store whose write transactions take turns already does nothing."""
        ...

    def save_record(self, record: ExportRecord, at: datetime) -> None:
        """Write a booking's export record over the last, unless that one is settled (it changes
        then only by `resettle_record`: a write read before it was settled is late); NotFound for an
        unknown booking."""
        ...

    def resettle_record(self, record: ExportRecord, at: datetime, *, last_wh: int) -> bool:
        """Write a settled record over one settled on the register reading `last_wh`
        (compare-and-set): False, changing nothing, if it is not that any more."""
        ...

    def records(self) -> Sequence[ExportRecord]:
        """Every export record, by booking id."""
        ...

    def terms_of(self, booking_ids: Sequence[int]) -> dict[int, ExportTerms]:
        """Each booking's terms by booking id; bookings without any are left out."""
        ...

    def records_of(self, booking_ids: Sequence[int]) -> dict[int, ExportRecord]:
        """Each booking's export record by booking id; bookings without one are left out."""
        ...

    def hold_export_owed(self, booking_id: int, session_id: int) -> bool:
        """Whether the booking's export is owed to its session `session_id` (it has terms, and that
        session's charger has not taken them); the terms are held until commit, as `export_taken`
        holds them."""
        ...

    def export_taken(self, booking_id: int, session_id: int) -> None:
        """The charger of the booking's session `session_id` took its export permission and profile."""
        ...

    def exports_owed(self) -> Sequence[tuple[int, str]]:
        """(session id, charge point id) of every open session on a booking with terms, at an OCPP
        2.1 charger, whose charger has not taken its export permission and profile, and which is
        the newest open session on its connector (the one `open_on` finds): by session id."""
        ...

    def host_buyer(self, host_id: int) -> ExportBuyer:
        """Who buys the export of the host's chargers' guests from now on (no choice: the grid)."""
        ...

    def set_host_buyer(self, host_id: int, buyer: ExportBuyer, at: datetime) -> None:
        """Record the host's choice; NotFound for an unknown host."""
        ...

    def settling(self, *, exclusive: bool) -> None:
        """Take a turn on the grid buyer's statements until the transaction ends: shared by each
        export credit, exclusive for recording a payment, so a payment reads every credit that took
        its turn before it, and a credit after it is dated after it. A store whose write
        transactions take turns already does nothing."""
        ...

    def add_settlement(self, settlement: GridSettlement) -> bool:
        """Record the grid buyer's payment of a month's statement; False (nothing written) if that
        month is settled already, by the database's key on the month, so one process wins a race."""
        ...

    def settlement(self, month: str) -> GridSettlement | None: ...

    def settlements(self) -> Sequence[GridSettlement]:
        """Every settled month, oldest first."""
        ...


class UnitOfWork(Protocol):
    """One unit of work: everything done through its repositories commits together or not at all."""

    @property
    def accounts(self) -> Accounts: ...
    @property
    def chargers(self) -> Chargers: ...
    @property
    def bookings(self) -> Bookings: ...
    @property
    def sessions(self) -> Sessions: ...
    @property
    def ledger(self) -> Ledger: ...
    @property
    def outbox(self) -> PaymentsOutbox: ...
    @property
    def notifications(self) -> Notifications: ...
    @property
    def security(self) -> SecurityLog: ...
    @property
    def reports(self) -> ChargerReports: ...
    @property
    def tokens(self) -> IdTokens: ...
    @property
    def smart(self) -> SmartCharging: ...
    @property
    def pricing(self) -> Pricing: ...
    @property
    def grid(self) -> Grid: ...
    @property
    def v2g(self) -> V2g: ...
    @property
    def refusals(self) -> CommandRefusals: ...
    @property
    def files(self) -> ChargerFiles: ...
    @property
    def fleet(self) -> Fleets: ...


class Store(Protocol):
    @property
    def dialect(self) -> str:
        """What it stores to: "sqlite", "postgresql" or "memory"."""
        ...

    def transaction(self) -> AbstractContextManager[UnitOfWork]: ...
    def reading(self) -> AbstractContextManager[UnitOfWork]:
        """A unit of work that only reads (it may skip write locks)."""
        ...

    def create_schema(self) -> str:
        """Bring the schema to the code's version; says what was done."""
        ...

    def close(self) -> None: ...


class LastSeen(Protocol):
    """Chargers' last-seen stamps, renewed in memory and written behind (adapters/last_seen.py)."""

    every: timedelta  # a stamp is renewed at most this often

    def record(self, cp_id: str, now: datetime) -> bool:
        """A frame from the charger; False when it is not known here (its first stamp is the
        caller's to write)."""
        ...

    def written(self, cp_id: str, at: datetime) -> None:
        """The store was just given `at` as its last seen."""
        ...

    def forget(self, cp_id: str) -> None:
        """Its next frame is written at once."""
        ...

    def drop(self, cp_id: str) -> datetime | None:
        """It went offline: nothing of it is kept. Its stamp here, if any (written or not)."""
        ...

    def flush(self, most: int | None = None) -> int: ...
    async def flush_in_batches(self, per_batch: int) -> int: ...
    def close(self) -> None: ...


class GridSignals(Protocol):
    """The grid's carbon intensity and the weather at a moment, as dynamic pricing reads them."""

    def reading(self, at: datetime) -> GridReading: ...


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


@dataclass(frozen=True)
class ClientCheck:
    """What a charger's TLS client certificate proved: `ok`, or why not."""

    ok: bool
    reason: str


class CertificateAuthority(Protocol):
    """OCPP security profile 3: the CA whose certificates chargers present (adapters/charger_ca.py)."""

    def sign_request(self, cp_id: str, csr_pem: str, *, still_valid: Callable[[], bool] | None = None) -> str:
        """The PEM chain for the charger's CSR; raises InvalidRequest for one it must not sign, or
        when `still_valid` (asked once the certificate is on record) says its credentials changed."""
        ...

    def check_client(self, cp_id: str, der: bytes) -> ClientCheck:
        """A verified client certificate: does it name `cp_id`, and is it still in good standing?"""
        ...

    def revoke(self, cp_id: str, *, block: bool = True, requested_only: bool = False) -> Sequence[int]:
        """Revoke the charger's certificates (`block`: and sign it no more until re-provisioned;
        `requested_only`: only those it bought with SignCertificate, not an operator's)."""
        ...


class Lease(Protocol):
    @property
    def fencing_token(self) -> int: ...


@dataclass(frozen=True)
class SlotClaim:
    """A connector's period claimed ahead of the database; `member` is empty when nothing was
    claimed (no claims in front, or their store unavailable)."""

    charger_id: int
    member: str


class SlotClaims(Protocol):
    """Periods of connectors claimed ahead of the database, so that in a race for one slot the losers
    are refused without reaching it. An optimisation in front of the database guarantee, never the
    guard: a claim only ever refuses, and lapses by itself if never released."""

    def claim(
        self,
        charger_id: int,
        connector_no: int,
        starts_at: datetime,
        ends_at: datetime,
        now: datetime,
        owner: str = "",
    ) -> SlotClaim | None:
        """Claim the period; None when a live claim on the connector overlaps it. A claim made under
        the same non-empty `owner` (a copy of one request) refuses nothing: then nothing is claimed
        (an empty member) and the database decides between the copies. The claim is pending: it
        lapses soon unless moved on."""
        ...

    def placing(self, claim: SlotClaim, now: datetime) -> None:
        """The claim's booking is committed and its card hold being placed: it holds for as long as
        a placement may take. A claim that lapsed meanwhile stays lapsed."""
        ...

    def confirm(self, claim: SlotClaim, booking_id: int, now: datetime) -> None: ...
    def release(self, claim: SlotClaim) -> None: ...
    def release_booking(self, charger_id: int, booking_id: int) -> None:
        """The booking has ended: its claim no longer refuses anyone."""
        ...


class NoSlotClaims:
    """Nothing in front of the database: every booking goes to it, and it decides alone."""

    def claim(
        self,
        charger_id: int,
        connector_no: int,
        starts_at: datetime,
        ends_at: datetime,
        now: datetime,
        owner: str = "",
    ) -> SlotClaim | None:
        return SlotClaim(charger_id, "")

    def placing(self, claim: SlotClaim, now: datetime) -> None:
        return None

    def confirm(self, claim: SlotClaim, booking_id: int, now: datetime) -> None:
        return None

    def release(self, claim: SlotClaim) -> None:
        return None

    def release_booking(self, charger_id: int, booking_id: int) -> None:
        return None


class LockManager(Protocol):
    """Advisory per-key locks. An optimisation in front of the database guarantee, never the guard."""

    def hold(self, key: str, ttl_ms: int) -> AbstractContextManager[Lease | None]: ...


class RedisClient(Protocol):
    """The shared Redis, as the app itself uses it: asked whether it answers, and closed with the
    app. The adapters built on it (locks, rate limits, slot claims) take the same client."""

    def ping(self) -> object: ...
    def close(self) -> None: ...


class Durability(Protocol):
    """When commits reach the disk. Writes made inside `deferred()` may commit without waiting for
    the disk; `flushed()` returns once every commit made before the call is durable. Whoever
    acknowledges such a write (an OCPP CALLRESULT) awaits `flushed()` first."""

    def deferred(self) -> AbstractContextManager[None]: ...
    async def flushed(self) -> None: ...
