"""An in-memory store: the `Store` port over plain dictionaries, for service tests that need no SQL.

It keeps the SQL store's promises, checked by the same repository contract tests
(tests/contract/): units of work are serialized and roll back on an exception; unique keys refuse
duplicates; a booking overlapping a live one is refused; a register only grows; a session moves
only for its own charger. Records are frozen, so a unit of work's snapshot is a shallow copy.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import threading
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chargeshare.domain.availability import WeeklyWindow, covers
from chargeshare.domain.booking import LIVE_STATES, BookingStatus
from chargeshare.domain.charger import BootPolicy, ChargerSpec, ChargerStatus, ConnectorStatus, ConnectorType
from chargeshare.domain.command_backoff import Backoff, OwedKind, Refusals
from chargeshare.domain.dynamic_pricing import HostPricing, Price
from chargeshare.domain.errors import BookingConflict, InvalidRequest, NotFound, StaleFencingToken, StartTaken
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
from chargeshare.domain.geo import Point, distance_m
from chargeshare.domain.grid_limits import MIN_CHARGING_W, Feeder, FlexEvent, Plan, Scope, Site
from chargeshare.domain.grid_settlement import GridSettlement
from chargeshare.domain.held_quotes import HeldQuote
from chargeshare.domain.ledger import JournalEntry
from chargeshare.domain.search import SearchQuery
from chargeshare.domain.seller_details import SellerDetails
from chargeshare.domain.session import SessionStatus
from chargeshare.domain.smart_charge_points import SmartSettings
from chargeshare.domain.tokens import IdToken, TokenStatus, TokenType, token_key
from chargeshare.domain.v2g import ExportBuyer, ExportRecord, ExportTerms
from chargeshare.ocpp import OcppVersion
from chargeshare.services.records import (
    AccountRecord,
    BookingQuote,
    BookingRecord,
    ChargerFile,
    ChargerReport,
    ChargerView,
    ConnectorView,
    DriverRecord,
    HostRecord,
    MeterAdvance,
    OutboxItem,
    SecurityEvent,
    SessionRecord,
    StoredCredentials,
)

MEMORY_URL = "memory://"
OUT_OF_USE = frozenset({ConnectorStatus.FAULTED, ConnectorStatus.UNAVAILABLE})


class DuplicateKey(Exception):
    """A unique key already taken: what the SQL store's database refuses with an integrity error."""


@dataclass(frozen=True)
class _Charger:
    charger_id: int
    charge_point_id: str
    host_id: int
    title: str
    location: Point
    price_per_kwh: int
    status: ChargerStatus
    ocpp_version: OcppVersion | None = None
    last_seen_at: datetime | None = None
    password_hash: str | None = None
    boot_policy: BootPolicy = BootPolicy.ACCEPTED


@dataclass(frozen=True)
class _Connector:
    connector_id: int
    charger_id: int
    connector_no: int
    type: ConnectorType
    max_power_w: int
    status: ConnectorStatus
    fence_token: int = 0
    available_at: datetime | None = None  # when last reported Available
    status_at: datetime | None = None  # the time of the report `status` came from


@dataclass(frozen=True)
class _Booking:
    booking_id: int
    driver_id: int
    connector_id: int
    starts_at: datetime
    ends_at: datetime
    status: BookingStatus
    max_energy_wh: int
    price_per_kwh: int
    hold_amount: int
    payment_ref: str | None
    created_at: datetime
    fee: int = 0
    cancelled_by: str | None = None
    reservation: str = "none"
    connector_held: bool = False


@dataclass(frozen=True)
class _ChargerTransaction:
    charger_id: int
    transaction_id: str
    seq_no: int | None
    meter_start_pending: bool


@dataclass
class _Tables:
    """Every table, each a dict of frozen records by key (lists for append-only logs)."""

    hosts: dict[int, str] = field(default_factory=dict)
    kyc: dict[int, str] = field(default_factory=dict)
    seller_details: dict[int, SellerDetails] = field(default_factory=dict)
    drivers: dict[int, DriverRecord] = field(default_factory=dict)
    driver_kyc: dict[int, str] = field(default_factory=dict)  # the checks of drivers' payout details
    accounts: dict[int, AccountRecord] = field(default_factory=dict)
    chargers: dict[int, _Charger] = field(default_factory=dict)
    connectors: dict[int, _Connector] = field(default_factory=dict)
    availability: dict[int, tuple[WeeklyWindow, ...]] = field(default_factory=dict)
    notes: dict[int, str] = field(default_factory=dict)
    bookings: dict[int, _Booking] = field(default_factory=dict)
    # (driver id, Idempotency-Key) -> (fingerprint, booking id)
    booking_requests: dict[tuple[int, str], tuple[str, int]] = field(default_factory=dict)
    sessions: dict[int, SessionRecord] = field(default_factory=dict)
    charger_transactions: dict[int, _ChargerTransaction] = field(default_factory=dict)
    entries: dict[str, JournalEntry] = field(default_factory=dict)
    outbox: dict[int, OutboxItem] = field(default_factory=dict)
    notifications: list[dict[str, object]] = field(default_factory=list)
    security: list[SecurityEvent] = field(default_factory=list)
    reports: list[ChargerReport] = field(default_factory=list)
    tokens: dict[int, IdToken] = field(default_factory=dict)
    walk_in: dict[int, int] = field(default_factory=dict)  # charger id -> price per kWh
    smart_settings: dict[int, SmartSettings] = field(default_factory=dict)  # by charger id
    overrides: dict[int, datetime] = field(default_factory=dict)  # booking id -> when overridden
    override_taken: dict[int, int] = field(default_factory=dict)  # booking id -> session that took it
    refusals: dict[tuple[int, OwedKind], Refusals] = field(default_factory=dict)  # by (session, kind)
    host_pricing: dict[int, HostPricing] = field(default_factory=dict)  # by host id
    quotes: dict[int, BookingQuote] = field(default_factory=dict)  # by booking id
    held_quotes: dict[int, HeldQuote] = field(default_factory=dict)  # by quote id
    files: dict[str, tuple[ChargerFile, bytes | None]] = field(default_factory=dict)  # by token
    fleet_accounts: dict[int, FleetAccount] = field(default_factory=dict)
    fleet_contracts: dict[int, FleetContract] = field(default_factory=dict)
    fleet_occurrences: dict[int, Occurrence] = field(default_factory=dict)  # by booking id
    fleet_invoices: dict[int, IssuedInvoice] = field(default_factory=dict)
    fleet_requests: dict[tuple[int, str, str], SeenRequest] = field(default_factory=dict)
    fleet_lines: dict[str, tuple[int, InvoiceLine]] = field(
        default_factory=dict
    )  # entry id -> (invoice, line)
    feeders: dict[int, Feeder] = field(default_factory=dict)
    sites: dict[int, Site] = field(default_factory=dict)
    site_of: dict[int, int] = field(default_factory=dict)  # charger id -> site id
    flex_events: dict[int, FlexEvent] = field(default_factory=dict)
    allocations: dict[int, int] = field(default_factory=dict)  # connector id -> W
    # connector id -> its later steps, in time order
    planned: dict[int, tuple[tuple[datetime, int], ...]] = field(default_factory=dict)
    v2g_terms: dict[int, ExportTerms] = field(default_factory=dict)  # by booking id
    v2g_taken: dict[int, int] = field(default_factory=dict)  # booking id -> session that took its export
    v2g_exports: dict[int, ExportRecord] = field(default_factory=dict)  # by booking id
    grid_settlements: dict[str, GridSettlement] = field(default_factory=dict)  # by month
    host_export_buyers: dict[int, ExportBuyer] = field(default_factory=dict)  # by host id
    held_w: dict[int, int] = field(default_factory=dict)  # connector id -> the most it may hold
    # charger id -> (decision, delivered, decided at, owed since)
    deliveries: dict[int, tuple[int, int, datetime, datetime | None]] = field(default_factory=dict)
    last_ids: dict[str, int] = field(default_factory=dict)  # per table, as a database's sequences

    def snapshot(self) -> _Tables:
        return _Tables(**{f.name: copy.copy(getattr(self, f.name)) for f in dataclasses.fields(self)})

    def newest_open_sessions(self) -> list[tuple[int, SessionRecord]]:
        """Each connector's newest open session, in id order: the one a resend finds (`open_on`);
        an older one left open is never sent what it is owed."""
        newest: dict[int, int] = {}
        for session_id, s in self.sessions.items():
            if s.status is SessionStatus.CHARGING:
                newest[s.connector_id] = max(session_id, newest.get(s.connector_id, session_id))
        return sorted((i, self.sessions[i]) for i in newest.values())


class MemoryStore:
    dialect = "memory"

    def __init__(self) -> None:
        self.tables = _Tables()
        self._lock = threading.RLock()
        self._open = False

    def next_id(self, table: str) -> int:
        """The table's next id; a rolled-back unit of work gives its ids back (as SQLite does)."""
        last = self.tables.last_ids.get(table, 0) + 1
        self.tables.last_ids[table] = last
        return last

    @contextmanager
    def transaction(self) -> Iterator[MemoryUnitOfWork]:
        with self._lock:
            if self._open:
                raise RuntimeError("a unit of work is already open on this store")
            before = self.tables.snapshot()
            self._open = True
            try:
                yield MemoryUnitOfWork(self)
            except BaseException:
                self.tables = before
                raise
            finally:
                self._open = False

    reading = transaction

    def create_schema(self) -> str:
        """Nothing to create: the tables are dictionaries."""
        return "current"

    def close(self) -> None:
        """Nothing to release."""


class _Repository:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    @property
    def t(self) -> _Tables:
        return self.store.tables


class MemoryUnitOfWork:
    def __init__(self, store: MemoryStore) -> None:
        self.accounts = MemoryAccounts(store)
        self.chargers = MemoryChargers(store)
        self.bookings = MemoryBookings(store)
        self.sessions = MemorySessions(store)
        self.ledger = MemoryLedger(store)
        self.outbox = MemoryPaymentsOutbox(store)
        self.notifications = MemoryNotifications(store)
        self.security = MemorySecurityLog(store)
        self.reports = MemoryChargerReports(store)
        self.tokens = MemoryIdTokens(store)
        self.smart = MemorySmartCharging(store)
        self.pricing = MemoryPricing(store)
        self.grid = MemoryGrid(store)
        self.v2g = MemoryV2g(store)
        self.refusals = MemoryCommandRefusals(store)
        self.files = MemoryChargerFiles(store)
        self.fleet = MemoryFleets(store)


# ---- accounts ------------------------------------------------------------------------------------
class MemoryAccounts(_Repository):
    def add_host(self, name: str) -> int:
        host_id = self.store.next_id("hosts")
        self.t.hosts[host_id] = name
        return host_id

    def add_driver(self, name: str, id_tag: str) -> int:
        # As the SQL store: a tag is no other driver's, nor a token's, in any case of its letters.
        key = token_key(id_tag)
        if self.driver_by_tag(id_tag) is not None or any(
            token_key(k.value) == key for k in self.t.tokens.values()
        ):
            raise InvalidRequest(f"id_tag {id_tag!r} is taken")
        driver_id = self.store.next_id("drivers")
        self.t.drivers[driver_id] = DriverRecord(driver_id, name, id_tag)
        return driver_id

    def driver(self, driver_id: int) -> DriverRecord:
        found = self.t.drivers.get(driver_id)
        if found is None:
            raise NotFound(f"no driver {driver_id}")
        return found

    def driver_by_tag(self, id_tag: str) -> DriverRecord | None:
        key = token_key(id_tag)
        return next((d for d in self.t.drivers.values() if token_key(d.id_tag) == key), None)

    def host(self, host_id: int) -> HostRecord:
        if host_id not in self.t.hosts:
            raise NotFound(f"no host {host_id}")
        return HostRecord(host_id, self.t.hosts[host_id], self.t.kyc.get(host_id, "pending"))

    def set_host_kyc(self, host_id: int, status: str, at: datetime) -> None:
        self.host(host_id)
        self.t.kyc[host_id] = status

    def verified_hosts(self) -> set[int]:
        return {h for h, status in self.t.kyc.items() if status == "verified"}

    def set_driver_kyc(self, driver_id: int, status: str, at: datetime) -> None:
        self.driver(driver_id)
        self.t.driver_kyc[driver_id] = status

    def driver_kyc(self, driver_id: int) -> str:
        self.driver(driver_id)
        return self.t.driver_kyc.get(driver_id, "pending")

    def verified_drivers(self) -> set[int]:
        return {d for d, status in self.t.driver_kyc.items() if status == "verified"}

    def lock_host(self, host_id: int) -> None:
        """Units of work on this store are serialized already."""

    def lock_driver(self, driver_id: int) -> None:
        """Units of work on this store are serialized already."""

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
        if self.by_email(email) is not None:
            raise InvalidRequest("an account with this email exists")
        account_id = self.store.next_id("accounts")
        self.t.accounts[account_id] = AccountRecord(
            account_id, email, password_hash, role, driver_id, host_id, created_at
        )
        return account_id

    def by_email(self, email: str) -> AccountRecord | None:
        return next((a for a in self.t.accounts.values() if a.email == email), None)

    def get(self, account_id: int) -> AccountRecord:
        found = self.t.accounts.get(account_id)
        if found is None:
            raise NotFound(f"no account {account_id}")
        return found

    def all(self) -> Sequence[AccountRecord]:
        return [a for _, a in sorted(self.t.accounts.items())]

    def hosts(self) -> Sequence[HostRecord]:
        return [self.host(host_id) for host_id in sorted(self.t.hosts)]

    def seller_details(self, host_id: int) -> SellerDetails | None:
        self.host(host_id)
        return self.t.seller_details.get(host_id)

    def set_seller_details(self, host_id: int, details: SellerDetails, at: datetime) -> None:
        self.host(host_id)
        self.t.seller_details[host_id] = details

    def all_seller_details(self) -> dict[int, SellerDetails]:
        return dict(sorted(self.t.seller_details.items()))


# ---- chargers ------------------------------------------------------------------------------------
class MemoryChargers(_Repository):
    def _view(self, c: _Charger, distance: float | None = None) -> ChargerView:
        connectors = sorted(
            (k for k in self.t.connectors.values() if k.charger_id == c.charger_id),
            key=lambda k: k.connector_no,
        )
        return ChargerView(
            charger_id=c.charger_id,
            charge_point_id=c.charge_point_id,
            host_id=c.host_id,
            title=c.title,
            location=c.location,
            price_per_kwh=c.price_per_kwh,
            status=c.status,
            ocpp_version=c.ocpp_version,
            last_seen_at=c.last_seen_at,
            connectors=tuple(
                ConnectorView(k.connector_id, k.connector_no, k.type, k.max_power_w, k.status)
                for k in connectors
            ),
            distance_m=distance,
            boot_policy=c.boot_policy,
        )

    def _by_cp(self, charge_point_id: str) -> _Charger:
        found = next((c for c in self.t.chargers.values() if c.charge_point_id == charge_point_id), None)
        if found is None:
            raise NotFound(f"no charger {charge_point_id!r}")
        return found

    def _replace(self, c: _Charger, **changes: Any) -> None:
        self.t.chargers[c.charger_id] = dataclasses.replace(c, **changes)

    def add(self, spec: ChargerSpec) -> int:
        if any(c.charge_point_id == spec.charge_point_id for c in self.t.chargers.values()):
            raise DuplicateKey(f"charge point id {spec.charge_point_id!r}")
        charger_id = self.store.next_id("chargers")
        self.t.chargers[charger_id] = _Charger(
            charger_id,
            spec.charge_point_id,
            spec.host_id,
            spec.title,
            spec.location,
            spec.tariff.price_per_kwh,
            ChargerStatus.REGISTERED,
            boot_policy=spec.boot_policy,
        )
        for c in spec.connectors:
            self.add_connector(charger_id, c.connector_no, c.type, c.max_power_w)
        return charger_id

    def get(self, charge_point_id: str) -> ChargerView:
        return self._view(self._by_cp(charge_point_id))

    def by_id(self, charger_id: int) -> ChargerView:
        found = self.t.chargers.get(charger_id)
        if found is None:
            raise NotFound(f"no charger {charger_id}")
        return self._view(found)

    def all(self) -> Sequence[ChargerView]:
        return [self._view(c) for _, c in sorted(self.t.chargers.items())]

    def of_host(self, host_id: int) -> Sequence[ChargerView]:
        return [self._view(c) for _, c in sorted(self.t.chargers.items()) if c.host_id == host_id]

    def boot_policy(self, charge_point_id: str) -> BootPolicy:
        return self._by_cp(charge_point_id).boot_policy

    def set_boot_policy(self, charger_id: int, policy: BootPolicy) -> None:
        c = self.t.chargers.get(charger_id)
        if c is None:
            raise NotFound(f"no charger {charger_id}")
        status = c.status if policy is BootPolicy.ACCEPTED else ChargerStatus.REGISTERED
        self._replace(c, boot_policy=policy, status=status)

    def status_and_connector(
        self, charge_point_id: str, connector_no: int
    ) -> tuple[ChargerStatus, int | None]:
        c = self._by_cp(charge_point_id)
        connector = next(
            (
                k.connector_id
                for k in self.t.connectors.values()
                if k.charger_id == c.charger_id and k.connector_no == connector_no
            ),
            None,
        )
        return c.status, connector

    def connector_state(
        self, charge_point_id: str, connector_no: int
    ) -> tuple[ChargerStatus, int | None, ConnectorStatus | None]:
        status, connector = self.status_and_connector(charge_point_id, connector_no)
        return status, connector, None if connector is None else self.t.connectors[connector].status

    def search(self, query: SearchQuery) -> Sequence[ChargerView]:
        area = query.area
        origin = query.origin
        window = query.available_from, query.available_until
        found: list[tuple[float, int, _Charger]] = []
        for c in self.t.chargers.values():
            if not area.contains(c.location):
                continue
            distance = distance_m(c.location, origin)
            if query.radius_m is not None and distance > query.radius_m:
                continue
            if query.max_price_per_kwh is not None and c.price_per_kwh > query.max_price_per_kwh:
                continue
            if c.boot_policy is not BootPolicy.ACCEPTED:
                continue
            if query.online_only and c.status is not ChargerStatus.ONLINE:
                continue
            if not any(
                self._connector_matches(k, query)
                for k in self.t.connectors.values()
                if k.charger_id == c.charger_id
            ):
                continue
            calendar = list(self.t.availability.get(c.charger_id, ()))
            if window[0] is not None and window[1] is not None and not covers(calendar, window[0], window[1]):
                continue
            found.append((distance, c.charger_id, c))
        found.sort(key=lambda f: (f[0], f[1]))
        return [self._view(c, d if query.centre is not None else None) for d, _, c in found[: query.limit]]

    def _connector_matches(self, k: _Connector, query: SearchQuery) -> bool:
        if query.connector_type is not None and k.type is not query.connector_type:
            return False
        if query.min_power_w is not None and k.max_power_w < query.min_power_w:
            return False
        if query.online_only and k.status in OUT_OF_USE:
            return False
        since, until = query.available_from, query.available_until
        if since is not None and until is not None:
            return not any(
                b.connector_id == k.connector_id
                and b.status in LIVE_STATES
                and b.starts_at < until
                and b.ends_at > since
                for b in self.t.bookings.values()
            )
        return True

    def set_availability(self, charger_id: int, windows: Sequence[WeeklyWindow]) -> None:
        if windows:
            self.t.availability[charger_id] = tuple(windows)
        else:
            self.t.availability.pop(charger_id, None)

    def availability(self, charger_ids: Sequence[int]) -> dict[int, list[WeeklyWindow]]:
        return {i: list(self.t.availability[i]) for i in charger_ids if i in self.t.availability}

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
        if expected is not None:
            found = next((c for c in self.t.chargers.values() if c.charge_point_id == charge_point_id), None)
            if found is None or found.status is not expected:
                return False
            if seen_before is not None and (found.last_seen_at is None or found.last_seen_at >= seen_before):
                return False
        assert expected is not None or seen_before is None, "silence is compared with an expected status"
        c = self._by_cp(charge_point_id)
        changes: dict[str, Any] = {"status": status, "last_seen_at": at}
        if ocpp_version is not None:
            changes["ocpp_version"] = ocpp_version
        self._replace(c, **changes)
        return True

    def touch(self, charge_point_id: str, at: datetime) -> None:
        self._replace(self._by_cp(charge_point_id), last_seen_at=at)

    def touch_many(self, stamps: Mapping[str, datetime]) -> list[str]:
        left = []
        for cp_id, at in stamps.items():
            try:
                c = self._by_cp(cp_id)
            except NotFound:
                left.append(cp_id)
                continue
            if c.status is ChargerStatus.OFFLINE or (c.last_seen_at is not None and c.last_seen_at > at):
                left.append(cp_id)
            else:
                self._replace(c, last_seen_at=at)
        return left

    def set_password(self, charge_point_id: str, password_hash: str | None) -> None:
        self._replace(self._by_cp(charge_point_id), password_hash=password_hash)

    def credentials(self, charge_point_id: str) -> StoredCredentials:
        c = self._by_cp(charge_point_id)
        return StoredCredentials(c.charger_id, c.password_hash)

    def has_bookings(self, charger_id: int) -> bool:
        ids = {k.connector_id for k in self.t.connectors.values() if k.charger_id == charger_id}
        return any(b.connector_id in ids for b in self.t.bookings.values())

    def remove(self, charge_point_id: str) -> None:
        c = self._by_cp(charge_point_id)
        ids = {k.connector_id for k in self.t.connectors.values() if k.charger_id == c.charger_id}
        if self.has_bookings(c.charger_id):
            raise InvalidRequest(f"charger {charge_point_id!r} has bookings; it cannot be removed")
        for i in ids:
            del self.t.connectors[i]
        self.t.availability.pop(c.charger_id, None)
        self.t.notes.pop(c.charger_id, None)
        self.t.reports = [r for r in self.t.reports if r.charger_id != c.charger_id]
        self.t.walk_in.pop(c.charger_id, None)
        self.t.smart_settings.pop(c.charger_id, None)
        self.t.site_of.pop(c.charger_id, None)
        self.t.deliveries.pop(c.charger_id, None)
        for i in ids:
            self.t.allocations.pop(i, None)
            self.t.planned.pop(i, None)
            self.t.held_w.pop(i, None)
        del self.t.chargers[c.charger_id]

    def silent(self, seen_before: datetime) -> Sequence[ChargerView]:
        return [
            self._view(c)
            for _, c in sorted(self.t.chargers.items())
            if c.status is ChargerStatus.ONLINE
            and c.last_seen_at is not None
            and c.last_seen_at < seen_before
        ]

    def set_connector_status(
        self, charge_point_id: str, connector_no: int, status: ConnectorStatus, at: datetime
    ) -> bool:
        found = next((c for c in self.t.chargers.values() if c.charge_point_id == charge_point_id), None)
        if found is None:
            return False  # as an UPDATE that matches no row
        took = False
        for k in list(self.t.connectors.values()):
            if k.charger_id != found.charger_id or connector_no not in (0, k.connector_no):
                continue
            if k.status_at is None or k.status_at <= at:  # a later report's status stands
                self.t.connectors[k.connector_id] = dataclasses.replace(k, status=status, status_at=at)
                took = True
        return took

    def connector_statuses(self, connector_ids: Sequence[int]) -> dict[int, ConnectorStatus]:
        return {i: self.t.connectors[i].status for i in connector_ids if i in self.t.connectors}

    def mark_available(
        self, connector_id: int, at: datetime, *, unless_reported_after: datetime | None = None
    ) -> bool:
        k = self.t.connectors.get(connector_id)
        if k is None:
            return False
        placed, latest = unless_reported_after, k.status_at
        if placed is not None and latest is not None and latest > placed:
            return False  # a later report's status stands
        self.t.connectors[connector_id] = dataclasses.replace(k, available_at=at)
        return True

    def available_at(self, connector_id: int) -> datetime | None:
        k = self.t.connectors.get(connector_id)
        return None if k is None else k.available_at

    def update(self, charger_id: int, *, title: str | None = None, price_per_kwh: int | None = None) -> None:
        changes: dict[str, Any] = {}
        if title is not None:
            changes["title"] = title
        if price_per_kwh is not None:
            changes["price_per_kwh"] = price_per_kwh
        if changes:
            c = self.t.chargers.get(charger_id)
            if c is None:
                raise NotFound(f"no charger {charger_id}")
            self._replace(c, **changes)

    def access_notes(self, charger_id: int) -> str:
        return self.t.notes.get(charger_id, "")

    def access_notes_of(self, charger_ids: Sequence[int]) -> dict[int, str]:
        return {i: self.t.notes[i] for i in set(charger_ids) if self.t.notes.get(i)}

    def set_access_notes(self, charger_id: int, notes: str) -> None:
        if notes:
            self.t.notes[charger_id] = notes
        else:
            self.t.notes.pop(charger_id, None)

    def _connector(self, charger_id: int, connector_no: int) -> _Connector | None:
        return next(
            (
                k
                for k in self.t.connectors.values()
                if k.charger_id == charger_id and k.connector_no == connector_no
            ),
            None,
        )

    def add_connector(
        self, charger_id: int, connector_no: int, type_: ConnectorType, max_power_w: int
    ) -> None:
        if self._connector(charger_id, connector_no) is not None:
            raise InvalidRequest(f"charger {charger_id} already has connector {connector_no}")
        connector_id = self.store.next_id("connectors")
        self.t.connectors[connector_id] = _Connector(
            connector_id, charger_id, connector_no, type_, max_power_w, ConnectorStatus.UNAVAILABLE
        )

    def update_connector(
        self,
        charger_id: int,
        connector_no: int,
        *,
        type_: ConnectorType | None = None,
        max_power_w: int | None = None,
    ) -> None:
        k = self._connector(charger_id, connector_no)
        if k is None:
            raise NotFound(f"charger {charger_id} has no connector {connector_no}")
        changes: dict[str, Any] = {}
        if type_ is not None:
            changes["type"] = type_
        if max_power_w is not None:
            changes["max_power_w"] = max_power_w
        self.t.connectors[k.connector_id] = dataclasses.replace(k, **changes)

    def remove_connector(self, charger_id: int, connector_no: int) -> None:
        k = self._connector(charger_id, connector_no)
        if k is None:
            raise NotFound(f"charger {charger_id} has no connector {connector_no}")
        if any(b.connector_id == k.connector_id for b in self.t.bookings.values()):
            raise InvalidRequest(f"connector {connector_no} has bookings; it cannot be removed")
        if sum(1 for c in self.t.connectors.values() if c.charger_id == charger_id) <= 1:
            raise InvalidRequest("a charger needs at least one connector")
        self.t.allocations.pop(k.connector_id, None)
        self.t.planned.pop(k.connector_id, None)
        self.t.held_w.pop(k.connector_id, None)
        del self.t.connectors[k.connector_id]


# ---- bookings ------------------------------------------------------------------------------------
class MemoryBookings(_Repository):
    def _record(self, b: _Booking) -> BookingRecord:
        connector = self.t.connectors[b.connector_id]
        charger = self.t.chargers[connector.charger_id]
        return BookingRecord(
            booking_id=b.booking_id,
            driver_id=b.driver_id,
            connector_id=b.connector_id,
            charger_id=charger.charger_id,
            host_id=charger.host_id,
            starts_at=b.starts_at,
            ends_at=b.ends_at,
            status=b.status,
            max_energy_wh=b.max_energy_wh,
            price_per_kwh=b.price_per_kwh,
            hold_amount=b.hold_amount,
            payment_ref=b.payment_ref,
            created_at=b.created_at,
            fee=b.fee,
            cancelled_by=b.cancelled_by,
            reservation=b.reservation,
            connector_held=b.connector_held,
        )

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
        connector = self.t.connectors.get(connector_id)
        if connector is None:
            raise NotFound(f"no connector {connector_id}")
        if fencing_token is not None:
            if connector.fence_token >= fencing_token:
                raise StaleFencingToken(
                    f"fencing token {fencing_token} is stale for connector {connector_id}"
                )
            self.t.connectors[connector_id] = dataclasses.replace(connector, fence_token=fencing_token)
        if any(
            b.connector_id == connector_id
            and b.status in LIVE_STATES
            and b.starts_at < ends_at
            and b.ends_at > starts_at
            for b in self.t.bookings.values()
        ):
            raise BookingConflict(f"connector {connector_id} is already booked for an overlapping period")
        booking_id = self.store.next_id("bookings")
        self.t.bookings[booking_id] = _Booking(
            booking_id,
            driver_id,
            connector_id,
            starts_at,
            ends_at,
            BookingStatus.REQUESTED,
            max_energy_wh,
            price_per_kwh,
            hold_amount,
            None,
            created_at,
        )
        return booking_id

    def _row(self, booking_id: int) -> _Booking:
        found = self.t.bookings.get(booking_id)
        if found is None:
            raise NotFound(f"no booking {booking_id}")
        return found

    def get(self, booking_id: int) -> BookingRecord:
        return self._record(self._row(booking_id))

    def lock(self, booking_id: int) -> None:
        pass  # units of work take turns here

    def remember_request(
        self, driver_id: int, key: str, fingerprint: str, booking_id: int, at: datetime
    ) -> bool:
        if (driver_id, key) in self.t.booking_requests:
            return False
        self._row(booking_id)
        self.t.booking_requests[(driver_id, key)] = (fingerprint, booking_id)
        return True

    def request_seen(self, driver_id: int, key: str) -> tuple[str, int] | None:
        return self.t.booking_requests.get((driver_id, key))

    def count_by_status(self) -> dict[str, int]:
        return dict(Counter(b.status.value for b in self.t.bookings.values()))

    def all(self, status: BookingStatus | None = None) -> Sequence[BookingRecord]:
        return [self._record(b) for _, b in sorted(self.t.bookings.items()) if status in (None, b.status)]

    def of(self, *, driver_id: int | None = None, host_id: int | None = None) -> Sequence[BookingRecord]:
        if (driver_id is None) == (host_id is None):
            raise ValueError("give a driver or a host")
        records = [self._record(b) for _, b in sorted(self.t.bookings.items(), reverse=True)]
        if driver_id is not None:
            return [r for r in records if r.driver_id == driver_id]
        return [r for r in records if r.host_id == host_id]

    def on_charger(self, charger_id: int, statuses: Collection[BookingStatus]) -> Sequence[BookingRecord]:
        records = (self._record(b) for _, b in sorted(self.t.bookings.items(), reverse=True))
        return [r for r in records if r.charger_id == charger_id and r.status in statuses]

    def starting_by(
        self, status: BookingStatus, starts_by: datetime, *, reservation: str | None = None
    ) -> Sequence[BookingRecord]:
        return [
            self._record(b)
            for _, b in sorted(self.t.bookings.items())
            if b.status is status and b.starts_at <= starts_by and reservation in (None, b.reservation)
        ]

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
        b = self._row(booking_id)
        if expected is not None and b.status is not expected:
            return False
        self.t.bookings[booking_id] = dataclasses.replace(
            b,
            status=status,
            ends_at=b.ends_at if ends_at is None else ends_at,
            payment_ref=b.payment_ref if payment_ref is None else payment_ref,
            fee=b.fee if fee is None else fee,
            cancelled_by=b.cancelled_by if cancelled_by is None else cancelled_by,
        )
        return True

    def fence_of(self, connector_id: int) -> int:
        connector = self.t.connectors.get(connector_id)
        return 0 if connector is None else connector.fence_token

    def set_reservation(
        self,
        booking_id: int,
        state: str,
        *,
        expected: str | None = None,
        status: BookingStatus | None = None,
    ) -> bool:
        b = self.t.bookings.get(booking_id)
        if b is None or (expected is not None and b.reservation != expected):
            return False
        if status is not None and b.status is not status:
            return False
        self.t.bookings[booking_id] = dataclasses.replace(b, reservation=state)
        return True

    def mark_connector_held(self, booking_id: int) -> None:
        b = self.t.bookings.get(booking_id)
        if b is not None:
            self.t.bookings[booking_id] = dataclasses.replace(b, connector_held=True)

    def reservations_on(
        self, charger_id: int, state: str, status: BookingStatus = BookingStatus.CONFIRMED
    ) -> Sequence[BookingRecord]:
        records = (self._record(b) for _, b in sorted(self.t.bookings.items()))
        return [
            r for r in records if r.charger_id == charger_id and r.status is status and r.reservation == state
        ]

    def reservations_owed(self) -> Sequence[tuple[int, str]]:
        ended = (BookingStatus.CANCELLED, BookingStatus.EXPIRED)
        return [
            (b.booking_id, self._charge_point_of(b.connector_id))
            for _, b in sorted(self.t.bookings.items())
            if (b.status is BookingStatus.CONFIRMED and b.reservation == "sent")
            or (b.status in ended and b.reservation in ("sent", "accepted"))
        ]

    def _charge_point_of(self, connector_id: int) -> str:
        return self.t.chargers[self.t.connectors[connector_id].charger_id].charge_point_id

    def for_start(
        self,
        connector_id: int,
        driver_id: int,
        at: datetime,
        status: BookingStatus = BookingStatus.CONFIRMED,
    ) -> BookingRecord | None:
        fits = [
            b
            for b in self.t.bookings.values()
            if b.connector_id == connector_id
            and b.driver_id == driver_id
            and b.status is status
            and b.ends_at > at
        ]
        return None if not fits else self._record(min(fits, key=lambda b: (b.starts_at, b.booking_id)))

    def held_periods(self, connector_id: int, since: datetime) -> Sequence[tuple[datetime, datetime]]:
        return sorted(
            (b.starts_at, b.ends_at)
            for b in self.t.bookings.values()
            if b.connector_id == connector_id and b.status in LIVE_STATES and b.ends_at > since
        )


# ---- sessions ------------------------------------------------------------------------------------
class MemorySessions(_Repository):
    def add(
        self, *, booking_id: int, connector_id: int, id_tag: str, started_at: datetime, meter_start_wh: int
    ) -> int:
        if any(s.booking_id == booking_id for s in self.t.sessions.values()):
            raise DuplicateKey(f"a session for booking {booking_id}")
        if self.by_start_key(connector_id, id_tag, meter_start_wh, started_at) is not None:
            raise StartTaken(f"a session with this start key on connector {connector_id}")
        session_id = self.store.next_id("sessions")
        self.t.sessions[session_id] = SessionRecord(
            session_id=session_id,
            booking_id=booking_id,
            connector_id=connector_id,
            id_tag=id_tag,
            started_at=started_at,
            meter_start_wh=meter_start_wh,
            meter_last_wh=meter_start_wh,
            status=SessionStatus.CHARGING,
            stopped_at=None,
            meter_stop_wh=None,
            billed_wh=None,
            cost=None,
        )
        return session_id

    def get(self, session_id: int) -> SessionRecord | None:
        return self.t.sessions.get(session_id)

    def all(self) -> Sequence[SessionRecord]:
        return [s for _, s in sorted(self.t.sessions.items())]

    def by_start_key(
        self, connector_id: int, id_tag: str, meter_start: int, started_at: datetime
    ) -> SessionRecord | None:
        return next(
            (
                s
                for s in self.t.sessions.values()
                if (s.connector_id, s.id_tag, s.meter_start_wh, s.started_at)
                == (connector_id, id_tag, meter_start, started_at)
            ),
            None,
        )

    def for_booking(self, booking_id: int) -> SessionRecord | None:
        return next((s for s in self.t.sessions.values() if s.booking_id == booking_id), None)

    def for_bookings(self, booking_ids: Sequence[int]) -> dict[int, SessionRecord]:
        wanted = set(booking_ids)
        return {s.booking_id: s for s in self.t.sessions.values() if s.booking_id in wanted}

    def open_on(self, connector_id: int) -> SessionRecord | None:
        charging = [
            s
            for s in self.t.sessions.values()
            if s.connector_id == connector_id and s.status is SessionStatus.CHARGING
        ]
        return max(charging, key=lambda s: s.session_id, default=None)

    def on_connector(
        self, charge_point_id: str, connector_no: int
    ) -> tuple[ChargerStatus, int | None, SessionRecord | None]:
        status, connector_id = MemoryChargers(self.store).status_and_connector(charge_point_id, connector_no)
        return status, connector_id, None if connector_id is None else self.open_on(connector_id)

    def charger_of(self, session_id: int) -> str | None:
        s = self.t.sessions.get(session_id)
        if s is None:
            return None
        return self.t.chargers[self.t.connectors[s.connector_id].charger_id].charge_point_id

    def charge_points_of(self, session_ids: Sequence[int]) -> dict[int, str]:
        found = {i: self.charger_of(i) for i in set(session_ids)}
        return {i: cp_id for i, cp_id in found.items() if cp_id is not None}

    def link_charger_transaction(
        self, session_id: int, charger_id: int, transaction_id: str, *, meter_start_pending: bool = False
    ) -> None:
        taken = any(
            (ct.charger_id, ct.transaction_id) == (charger_id, transaction_id)
            for ct in self.t.charger_transactions.values()
        )
        if taken or session_id in self.t.charger_transactions:
            raise DuplicateKey(f"charger transaction {transaction_id!r}")
        self.t.charger_transactions[session_id] = _ChargerTransaction(
            charger_id, transaction_id, None, meter_start_pending
        )

    def settle_meter_start(self, session_id: int, meter_wh: int) -> bool:
        ct = self.t.charger_transactions.get(session_id)
        if ct is None or not ct.meter_start_pending:
            return False
        if self.t.sessions[session_id].status is not SessionStatus.CHARGING:
            return False
        self.t.charger_transactions[session_id] = dataclasses.replace(ct, meter_start_pending=False)
        s = self.t.sessions[session_id]
        self.t.sessions[session_id] = dataclasses.replace(s, meter_start_wh=meter_wh, meter_last_wh=meter_wh)
        return True

    def awaits_first_reading(self, session_id: int) -> bool:
        ct = self.t.charger_transactions.get(session_id)
        return ct is not None and ct.meter_start_pending

    def by_charger_transaction(self, charger_id: int, transaction_id: str) -> SessionRecord | None:
        for session_id, ct in self.t.charger_transactions.items():
            if (ct.charger_id, ct.transaction_id) == (charger_id, transaction_id):
                return self.t.sessions.get(session_id)
        return None

    def running_elsewhere(self, transaction_id: str, charger_id: int | None) -> int | None:
        for session_id, ct in self.t.charger_transactions.items():
            s = self.t.sessions.get(session_id)
            if (
                ct.transaction_id == transaction_id
                and ct.charger_id != charger_id
                and s is not None
                and s.status is SessionStatus.CHARGING
            ):
                return session_id
        return None

    def charger_transaction_id(self, session_id: int) -> str | None:
        ct = self.t.charger_transactions.get(session_id)
        return None if ct is None else ct.transaction_id

    def charger_seq(self, session_id: int) -> int | None:
        ct = self.t.charger_transactions.get(session_id)
        return None if ct is None else ct.seq_no

    def advance_charger_seq(self, session_id: int, seq_no: int) -> bool:
        ct = self.t.charger_transactions.get(session_id)
        if ct is None or (ct.seq_no is not None and ct.seq_no >= seq_no):
            return False
        self.t.charger_transactions[session_id] = dataclasses.replace(ct, seq_no=seq_no)
        return True

    def advance_meter(
        self, session_id: int, meter_wh: int, charge_point_id: str, at: datetime
    ) -> MeterAdvance | None:
        s = self.t.sessions.get(session_id)
        if (
            s is None
            or s.status is not SessionStatus.CHARGING
            or self.charger_of(session_id) != charge_point_id
        ):
            return None
        s = dataclasses.replace(
            s,
            meter_last_wh=max(s.meter_last_wh, meter_wh),
            freed_at=None if s.freed_at is None else at,  # its stop is queued behind this reading
        )
        self.t.sessions[session_id] = s
        booking = self.t.bookings[s.booking_id]
        return MeterAdvance(s.booking_id, s.meter_start_wh, s.meter_last_wh, booking.max_energy_wh)

    def mark_idle(self, session_id: int, since: datetime | None) -> None:
        s = self.t.sessions.get(session_id)
        if s is None or (since is not None and s.idle_since is not None):
            return  # idle from the first report; None (charging again) always clears it
        self.t.sessions[session_id] = dataclasses.replace(s, idle_since=since)

    def mark_freed(self, session_id: int, at: datetime | None) -> None:
        s = self.t.sessions.get(session_id)
        if s is None or (at is not None and s.freed_at is not None):
            return  # freed from the first report; None (in use again) always clears it
        self.t.sessions[session_id] = dataclasses.replace(s, freed_at=at)

    def held_by_another(self, connector_id: int, booking_id: int, start: datetime, end: datetime) -> bool:
        return any(
            s.connector_id == connector_id
            and s.booking_id != booking_id
            and s.started_at < end
            and (s.stopped_at is None or s.stopped_at > start)
            for s in self.t.sessions.values()
        )

    def stops_owed(self) -> Sequence[tuple[int, str]]:
        owed = []
        for session_id, s in sorted(self.t.sessions.items()):
            limit = self.t.bookings[s.booking_id].max_energy_wh
            if s.status is SessionStatus.CHARGING and s.meter_last_wh - s.meter_start_wh >= limit:
                charge_point = self.charger_of(session_id)
                assert charge_point is not None
                owed.append((session_id, charge_point))
        return owed

    def freed_before(self, cutoff: datetime) -> Sequence[SessionRecord]:
        return [
            s
            for _, s in sorted(self.t.sessions.items())
            if s.status is SessionStatus.CHARGING and s.freed_at is not None and s.freed_at < cutoff
        ]

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
        s = self.t.sessions.get(session_id)
        if s is None or s.status is not SessionStatus.CHARGING:
            return False
        self.t.sessions[session_id] = dataclasses.replace(
            s,
            status=SessionStatus.STOPPED,
            stopped_at=stopped_at,
            meter_stop_wh=meter_stop_wh,
            meter_last_wh=max(s.meter_last_wh, meter_stop_wh),
            billed_wh=billed_wh,
            cost=cost,
            idle_fee=idle_fee,
            unmetered=unmetered,
            closed_lost=closed_lost,
        )
        return True

    def unmetered(self) -> Sequence[SessionRecord]:
        return [s for _, s in sorted(self.t.sessions.items()) if s.unmetered]

    def late_stops(self, after: int, limit: int) -> Sequence[SessionRecord]:
        late = [
            s
            for i, s in sorted(self.t.sessions.items())
            if i > after and (s.late_stop_at is not None or s.late_rebilled_at is not None)
        ]
        return late[:limit]

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
        s = self.t.sessions.get(session_id)
        if s is None or s.status is not SessionStatus.STOPPED or s.meter_stop_wh != billed_stop_wh:
            return False
        if not (meter_stop_wh > s.meter_stop_wh or _higher_late_export(s, export_wh)):
            return False  # nothing new: a repeat
        self.t.sessions[session_id] = dataclasses.replace(
            s,
            meter_stop_wh=meter_stop_wh,
            meter_last_wh=max(s.meter_last_wh, meter_stop_wh),
            billed_wh=billed_wh,
            cost=cost,
            unmetered=False,
            late_rebilled_at=at,
            late_export_wh=_highest_late_export(s, export_wh),
        )
        return True

    def record_late_stop(
        self,
        session_id: int,
        register_wh: int,
        at: datetime,
        export_wh: int | None = None,
        *,
        billed_stop_wh: int,
    ) -> bool:
        s = self.t.sessions.get(session_id)
        if s is None or s.status is not SessionStatus.STOPPED or s.meter_stop_wh != billed_stop_wh:
            return False
        kept = s.meter_stop_wh if s.late_stop_wh is None else s.late_stop_wh
        if not (register_wh > kept or _higher_late_export(s, export_wh)):
            return False  # nothing new: a repeat, or a lower reading
        self.t.sessions[session_id] = dataclasses.replace(
            s,
            late_stop_wh=register_wh if register_wh > kept else s.late_stop_wh,
            late_stop_at=at,
            late_export_wh=_highest_late_export(s, export_wh),
        )
        return True


def _higher_late_export(s: SessionRecord, export_wh: int | None) -> bool:
    """A late stop's export reading above any a late stop of the session brought."""
    return export_wh is not None and (s.late_export_wh is None or export_wh > s.late_export_wh)


def _highest_late_export(s: SessionRecord, export_wh: int | None) -> int | None:
    """Never lowered: a later stop without an export reading loses none."""
    return export_wh if _higher_late_export(s, export_wh) else s.late_export_wh


# ---- the journal, the outbox, notices ----------------------------------------------------------------
class MemoryLedger(_Repository):
    def add(self, entries: Sequence[JournalEntry]) -> None:
        for e in entries:
            if e.entry_id in self.t.entries:
                continue  # written already: the same step done again
            if e.pending_id is not None and any(
                x.pending_id == e.pending_id for x in self.t.entries.values()
            ):
                raise DuplicateKey(f"a second resolution of hold {e.pending_id!r}")
            self.t.entries[e.entry_id] = e

    def entries_of(self, booking_ids: Sequence[int]) -> dict[int, list[JournalEntry]]:
        wanted = set(booking_ids)
        out: dict[int, list[JournalEntry]] = {}
        for e in self.entries():
            if e.booking_id is not None and e.booking_id in wanted:
                out.setdefault(e.booking_id, []).append(e)
        return out

    def entries(self, booking_id: int | None = None, account: str | None = None) -> Sequence[JournalEntry]:
        found = [
            e
            for e in self.t.entries.values()
            if (booking_id is None or e.booking_id == booking_id)
            and (account is None or any(p.account == account for p in e.postings))
        ]
        # By time, then as written (a dict keeps insertion order, and a rollback's copy keeps it).
        return sorted(found, key=lambda e: e.created_at)

    def posting_sums(self) -> dict[str, int]:
        return {e.entry_id: sum(p.amount for p in e.postings) for e in self.t.entries.values() if e.postings}


class MemoryPaymentsOutbox(_Repository):
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
        if self.get(key) is not None:
            return False
        item_id = self.store.next_id("payment_outbox")
        due = now if due_at is None else due_at
        lease = None if claimed_by is None else due
        self.t.outbox[item_id] = OutboxItem(
            item_id, booking_id, step, amount, key, "pending", 0, due, None, now, None, claimed_by, lease
        )
        return True

    def reprice_unworked(self, key: str, amount: int) -> bool:
        item = self.get(key)
        if (
            item is None
            or item.status != "pending"
            or item.attempts
            or item.claimed_by is not None
            or item.last_error is not None
        ):
            return False
        self.t.outbox[item.item_id] = dataclasses.replace(item, amount=amount)
        return True

    @staticmethod
    def _unheld(i: OutboxItem, now: datetime) -> bool:
        return i.status == "pending" and (i.lease_until is None or i.lease_until <= now)

    def _claimed(self, items: list[OutboxItem], worker: str, lease_until: datetime) -> list[OutboxItem]:
        out = []
        for i in items:
            i = dataclasses.replace(i, claimed_by=worker, lease_until=lease_until)
            self.t.outbox[i.item_id] = i
            out.append(i)
        return out

    def claim_due(
        self, now: datetime, limit: int, worker: str, lease_until: datetime
    ) -> Sequence[OutboxItem]:
        due = [i for i in self.t.outbox.values() if self._unheld(i, now) and i.next_attempt_at <= now]
        due.sort(key=lambda i: (i.next_attempt_at, i.item_id))
        return self._claimed(due[:limit], worker, lease_until)

    def claim_of(
        self, booking_id: int, now: datetime, worker: str, lease_until: datetime
    ) -> Sequence[OutboxItem]:
        mine = [i for _, i in sorted(self.t.outbox.items()) if i.booking_id == booking_id]
        return self._claimed([i for i in mine if self._unheld(i, now)], worker, lease_until)

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
        item = self.t.outbox.get(item_id)
        if item is None or item.claimed_by != worker or item.status != "pending":
            return False
        self.t.outbox[item_id] = dataclasses.replace(
            item,
            status=status,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            last_error=None if last_error is None else last_error[:500],
            done_at=done_at,
            reference=item.reference if reference is None else reference,
            declines=item.declines + declined,
            claimed_by=None,
            lease_until=None,
        )
        return True

    def get(self, key: str) -> OutboxItem | None:
        return next((i for i in self.t.outbox.values() if i.idempotency_key == key), None)

    def due(self, now: datetime, limit: int) -> Sequence[OutboxItem]:
        due = [i for i in self.t.outbox.values() if i.status == "pending" and i.next_attempt_at <= now]
        return sorted(due, key=lambda i: (i.next_attempt_at, i.item_id))[:limit]

    def count_by_status(self) -> dict[str, int]:
        return dict(Counter(i.status for i in self.t.outbox.values()))

    def next_claimable_at(self) -> datetime | None:
        moments = [
            i.next_attempt_at if i.lease_until is None else max(i.next_attempt_at, i.lease_until)
            for i in self.t.outbox.values()
            if i.status == "pending"
        ]
        return min(moments, default=None)

    def all(self, status: str | None = None) -> Sequence[OutboxItem]:
        return [i for _, i in sorted(self.t.outbox.items()) if status in (None, i.status)]

    def pending_of(self, booking_id: int) -> Sequence[OutboxItem]:
        return [
            i
            for _, i in sorted(self.t.outbox.items())
            if i.booking_id == booking_id and i.status == "pending"
        ]

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
        item = self.t.outbox.get(item_id)
        if item is None or item.status != expected or item.attempts != expected_attempts:
            return False
        if item.lease_until is not None and item.lease_until > now:
            return False
        self.t.outbox[item_id] = dataclasses.replace(
            item,
            status=status,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            last_error=None if last_error is None else last_error[:500],
            done_at=done_at,
            claimed_by=None,
            lease_until=None,
        )
        return True


class MemoryNotifications(_Repository):
    def add(self, host_id: int, kind: str, subject: str, body: str, at: datetime) -> None:
        self.t.notifications.append(
            {
                "id": self.store.next_id("notifications"),
                "host_id": host_id,
                "kind": kind,
                "subject": subject,
                "body": body,
                "created_at": at,
                "delivered_at": None,
            }
        )

    def all(self, host_id: int | None = None) -> Sequence[dict[str, object]]:
        return [dict(n) for n in self.t.notifications if host_id in (None, n["host_id"])]


class MemorySecurityLog(_Repository):
    def record(
        self, charge_point_id: str, kind: str, detail: str, at: datetime, *, source: str = "backend"
    ) -> None:
        event_id = self.store.next_id("security_events")
        self.t.security.append(
            SecurityEvent(event_id, charge_point_id[:64], kind[:48], detail[:500], at, source)
        )

    def all(self, charge_point_id: str | None = None) -> Sequence[SecurityEvent]:
        return [e for e in self.t.security if charge_point_id in (None, e.charge_point_id)]


class MemoryChargerReports(_Repository):
    def add(
        self,
        charger_id: int,
        action: str,
        summary: str,
        body: Mapping[str, Any],
        *,
        received_at: datetime,
        reported_at: datetime | None = None,
    ) -> int:
        if charger_id not in self.t.chargers:
            raise DuplicateKey(f"no charger {charger_id} to report on")  # the SQL foreign key's refusal
        report_id = self.store.next_id("charger_reports")
        # Stored as JSON is: a copy the caller cannot change afterwards.
        body_copy = copy.deepcopy(dict(body))
        self.t.reports.append(
            ChargerReport(
                report_id, charger_id, action[:48], summary[:500], body_copy, reported_at, received_at
            )
        )
        return report_id

    def of(self, charger_id: int, actions: Sequence[str] = ()) -> Sequence[ChargerReport]:
        return [
            r for r in self.t.reports if r.charger_id == charger_id and (not actions or r.action in actions)
        ]


class MemoryIdTokens(_Repository):
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
        if driver_id not in self.t.drivers:
            raise NotFound(f"no driver {driver_id}")
        owner = self._tag_owner(value)
        if owner is not None and owner.driver_id != driver_id:
            raise InvalidRequest(f"{value!r} is another driver's id tag")
        if self.by_value(value) is not None:
            raise InvalidRequest(f"token {value!r} already exists")
        token_id = self.store.next_id("id_tokens")
        self.t.tokens[token_id] = IdToken(
            token_id, driver_id, value, type_, status, expires_at, group_id, master_pass, created_at
        )
        return token_id

    def get(self, token_id: int) -> IdToken:
        found = self.t.tokens.get(token_id)
        if found is None:
            raise NotFound(f"no token {token_id}")
        return found

    def by_value(self, value: str) -> IdToken | None:
        key = token_key(value)
        return next((k for k in self.t.tokens.values() if token_key(k.value) == key), None)

    def _tag_owner(self, value: str) -> DriverRecord | None:
        key = token_key(value)
        return next((d for d in self.t.drivers.values() if token_key(d.id_tag) == key), None)

    def set_status(self, token_id: int, status: TokenStatus) -> None:
        self.t.tokens[token_id] = dataclasses.replace(self.get(token_id), status=status)

    def all(self, driver_id: int | None = None) -> Sequence[IdToken]:
        return [k for _, k in sorted(self.t.tokens.items()) if driver_id in (None, k.driver_id)]

    def set_walk_in(self, charger_id: int, price_per_kwh: int | None) -> None:
        if charger_id not in self.t.chargers:
            raise NotFound(f"no charger {charger_id}")
        if price_per_kwh is None:
            self.t.walk_in.pop(charger_id, None)
        else:
            self.t.walk_in[charger_id] = price_per_kwh

    def walk_in_price(self, charger_id: int) -> int | None:
        return self.t.walk_in.get(charger_id)


# ---- smart charging regulations -------------------------------------------------------------------
class MemorySmartCharging(_Repository):
    def settings(self, charger_id: int) -> SmartSettings | None:
        return self.t.smart_settings.get(charger_id)

    def save(self, charger_id: int, settings: SmartSettings, at: datetime) -> None:
        if charger_id not in self.t.chargers:
            raise NotFound(f"no charger {charger_id}")
        self.t.smart_settings[charger_id] = settings

    def configured(self) -> dict[int, SmartSettings]:
        return dict(sorted(self.t.smart_settings.items()))

    def add_override(self, booking_id: int, at: datetime) -> None:
        if booking_id not in self.t.bookings:
            raise NotFound(f"no booking {booking_id}")
        self.t.overrides.setdefault(booking_id, at)

    def overridden(self, booking_ids: Sequence[int]) -> set[int]:
        return {b for b in booking_ids if b in self.t.overrides}

    def hold_override_owed(self, booking_id: int, session_id: int) -> bool:
        return booking_id in self.t.overrides and self.t.override_taken.get(booking_id) != session_id

    def override_taken(self, booking_id: int, session_id: int) -> None:
        if booking_id in self.t.overrides:
            self.t.override_taken[booking_id] = session_id

    def overrides_owed(self) -> Sequence[tuple[int, str]]:
        owed = []
        for session_id, s in self.t.newest_open_sessions():
            if s.booking_id not in self.t.overrides:
                continue
            if self.t.override_taken.get(s.booking_id) != session_id:
                charger = self.t.chargers[self.t.connectors[s.connector_id].charger_id]
                owed.append((session_id, charger.charge_point_id))
        return owed


class MemoryCommandRefusals(_Repository):
    def of(self, kind: OwedKind, session_ids: Sequence[int]) -> dict[int, Refusals]:
        found = ((s, self.t.refusals.get((s, kind))) for s in session_ids)
        return {s: r for s, r in found if r is not None}

    def refused(
        self, session_id: int, kind: OwedKind, at: datetime, backoff: Backoff
    ) -> tuple[Refusals, bool]:
        before = self._before(session_id, kind)
        after = self._next(session_id, kind, backoff.refused(before, at))
        return after, after.given_up and (before is None or not before.given_up)

    def unanswered(self, session_id: int, kind: OwedKind, at: datetime, backoff: Backoff) -> Refusals:
        return self._next(session_id, kind, backoff.went_unanswered(self._before(session_id, kind), at))

    def _before(self, session_id: int, kind: OwedKind) -> Refusals | None:
        # Units of work take turns here, so the record read is the one to add to.
        if session_id not in self.t.sessions:
            raise NotFound(f"no session {session_id}")
        return self.t.refusals.get((session_id, kind))

    def _next(self, session_id: int, kind: OwedKind, after: Refusals) -> Refusals:
        self.t.refusals[(session_id, kind)] = after
        return after

    def clear(self, session_id: int, kind: OwedKind) -> None:
        self.t.refusals.pop((session_id, kind), None)

    def prune(self, limit: int) -> int:
        taken = {OwedKind.OVERRIDE: self.t.override_taken, OwedKind.EXPORT: self.t.v2g_taken}
        gone = []
        for session_id, kind in sorted(self.t.refusals):
            s = self.t.sessions[session_id]
            if s.status is not SessionStatus.CHARGING or taken[kind].get(s.booking_id) == session_id:
                gone.append((session_id, kind))
        for key in gone[:limit]:
            del self.t.refusals[key]
        return len(gone[:limit])


# ---- pricing --------------------------------------------------------------------------------------
class MemoryPricing(_Repository):
    def settings(self, host_id: int) -> HostPricing | None:
        return self.t.host_pricing.get(host_id)

    def save(self, host_id: int, settings: HostPricing, at: datetime) -> None:
        if host_id not in self.t.hosts:
            raise NotFound(f"no host {host_id}")
        self.t.host_pricing[host_id] = settings

    def add_quote(self, booking_id: int, quote: Price, at: datetime) -> None:
        if booking_id not in self.t.bookings:
            raise NotFound(f"no booking {booking_id}")
        if booking_id in self.t.quotes:
            raise InvalidRequest(f"booking {booking_id} was quoted already")
        self.t.quotes[booking_id] = BookingQuote(booking_id, quote.per_kwh, quote.mode.value, at)

    def quotes(self, booking_ids: Sequence[int] | None = None) -> dict[int, BookingQuote]:
        wanted = self.t.quotes.keys() if booking_ids is None else set(booking_ids)
        return {b: self.t.quotes[b] for b in sorted(wanted) if b in self.t.quotes}

    def hold(self, quote: HeldQuote) -> HeldQuote:
        if quote.driver_id not in self.t.drivers:
            raise NotFound(f"no driver {quote.driver_id}")
        if quote.charger_id not in self.t.chargers:
            raise NotFound(f"no charger {quote.charger_id}")
        held = dataclasses.replace(quote, quote_id=self.store.next_id("held_quotes"), booking_id=None)
        self.t.held_quotes[held.quote_id] = held
        return held

    def held(self, quote_id: int) -> HeldQuote:
        found = self.t.held_quotes.get(quote_id)
        if found is None:
            raise NotFound(f"no quote {quote_id}")
        return found

    def use_held(self, quote_id: int, booking_id: int) -> bool:
        self.held(quote_id)
        quote = self.t.held_quotes[quote_id]  # as kept: only its booking changes, as in SQL
        if booking_id not in self.t.bookings:
            raise NotFound(f"no booking {booking_id}")
        if quote.booking_id is not None:
            return False
        if any(q.booking_id == booking_id for q in self.t.held_quotes.values()):
            raise InvalidRequest(f"booking {booking_id} used a quote already")  # SQL: the unique column
        self.t.held_quotes[quote_id] = dataclasses.replace(quote, booking_id=booking_id)
        return True

    def held_used_by(self, booking_ids: Sequence[int] | None = None) -> dict[int, HeldQuote]:
        used = {q.booking_id: q for q in self.t.held_quotes.values() if q.booking_id is not None}
        wanted = used.keys() if booking_ids is None else set(booking_ids)
        return {b: used[b] for b in sorted(wanted) if b in used}

    def held_ids(self) -> list[int]:
        return sorted(self.t.held_quotes)

    def delete_expired_held(self, expired_before: datetime, limit: int) -> int:
        if limit < 1:
            raise InvalidRequest("a batch deletes at least one quote")
        gone = [
            q.quote_id
            for q in sorted(self.t.held_quotes.values(), key=lambda q: q.quote_id)
            if q.booking_id is None and q.expires_at < expired_before
        ][:limit]
        for quote_id in gone:
            del self.t.held_quotes[quote_id]
        return len(gone)


# ---- site and feeder limits -----------------------------------------------------------------------
class MemoryGrid(_Repository):
    def add_feeder(self, name: str, limit_w: int) -> Feeder:
        Feeder(0, name, limit_w)
        f = Feeder(self.store.next_id("grid_feeders"), name, limit_w)
        self.t.feeders[f.feeder_id] = f
        return f

    def feeders(self) -> Sequence[Feeder]:
        return [f for _, f in sorted(self.t.feeders.items())]

    def add_site(
        self, host_id: int, name: str, limit_w: int, house_load_w: int, feeder_id: int | None
    ) -> Site:
        Site(0, host_id, name, limit_w, house_load_w, feeder_id)
        if host_id not in self.t.hosts:
            raise NotFound(f"no host {host_id}")
        if feeder_id is not None and feeder_id not in self.t.feeders:
            raise NotFound(f"no feeder {feeder_id}")
        s = Site(self.store.next_id("grid_sites"), host_id, name, limit_w, house_load_w, feeder_id)
        self.t.sites[s.site_id] = s
        return s

    def sites(self, host_id: int | None = None) -> Sequence[Site]:
        return [s for _, s in sorted(self.t.sites.items()) if host_id in (None, s.host_id)]

    def set_house_load(self, site_id: int, house_load_w: int, measured_at: datetime) -> tuple[Site, bool]:
        Site(0, 0, "", MIN_CHARGING_W, house_load_w)  # checks the load first, as the SQL store does
        if site_id not in self.t.sites:
            raise NotFound(f"no site {site_id}")
        s = self.t.sites[site_id]
        if s.house_load_at is not None and measured_at < s.house_load_at:
            return s, False  # an older reading than the one in force, as the SQL store's compare and set
        s = dataclasses.replace(s, house_load_w=house_load_w, house_load_at=measured_at)
        self.t.sites[site_id] = s
        return s, True

    def place(self, charger_id: int, site_id: int | None) -> None:
        if charger_id not in self.t.chargers:
            raise NotFound(f"no charger {charger_id}")
        if site_id is None:
            self.t.site_of.pop(charger_id, None)
            return
        if site_id not in self.t.sites:
            raise NotFound(f"no site {site_id}")
        self.t.site_of[charger_id] = site_id

    def members(self) -> dict[int, int]:
        return dict(sorted(self.t.site_of.items()))

    def add_flex_event(
        self, scope: Scope, target_id: int, limit_w: int, starts_at: datetime, ends_at: datetime, at: datetime
    ) -> FlexEvent:
        FlexEvent(0, scope, target_id, limit_w, starts_at, ends_at)
        targets: Mapping[int, object] = self.t.sites if scope is Scope.SITE else self.t.feeders
        if target_id not in targets:
            raise NotFound(f"no {scope.value} {target_id}")
        e = FlexEvent(self.store.next_id("grid_flex_events"), scope, target_id, limit_w, starts_at, ends_at)
        self.t.flex_events[e.event_id] = e
        return e

    def flex_events(self, ending_after: datetime | None = None) -> Sequence[FlexEvent]:
        found = [e for e in self.t.flex_events.values() if ending_after is None or e.ends_at > ending_after]
        return sorted(found, key=lambda e: (e.starts_at, e.event_id))

    def deciding(self) -> None:
        """Units of work take turns already (the store's lock)."""

    def allocations(self) -> dict[int, int]:
        return dict(sorted(self.t.allocations.items()))

    def plans(self) -> dict[int, Plan]:
        return {c: Plan(w, self.t.planned.get(c, ())) for c, w in sorted(self.t.allocations.items())}

    def save_allocations(
        self,
        limits_w: Mapping[int, int | None],
        at: datetime,
        planned: Mapping[int, Sequence[tuple[datetime, int]]] | None = None,
    ) -> None:
        steps = planned or {}
        for connector_id, limit_w in limits_w.items():
            self.t.planned.pop(connector_id, None)
            if limit_w is None:
                self.t.allocations.pop(connector_id, None)
                self.t.held_w.pop(connector_id, None)
                continue
            if connector_id in self.t.held_w:
                most = max([limit_w, *(w for _, w in steps.get(connector_id, ()))])
                self.t.held_w[connector_id] = max(self.t.held_w[connector_id], most)
            self.t.allocations[connector_id] = limit_w
            if steps.get(connector_id):
                self.t.planned[connector_id] = tuple(sorted(steps[connector_id]))

    def owe(self, charger_ids: Sequence[int], at: datetime) -> dict[int, int]:
        for charger_id in charger_ids:
            decision, delivered, _, since = self.t.deliveries.get(charger_id, (0, 0, at, None))
            self.t.deliveries[charger_id] = (
                decision + 1,
                delivered,
                at,
                at if delivered >= decision else since,
            )
        return {c: self.t.deliveries[c][0] for c in charger_ids}

    def delivery(self, charger_id: int) -> tuple[int, int] | None:
        found = self.t.deliveries.get(charger_id)
        return None if found is None else found[:2]

    def delivered(self, charger_id: int, decision: int, at: datetime) -> None:
        found = self.t.deliveries.get(charger_id)
        if found is None or found[0] < decision:
            return
        latest, done, decided_at, since = found
        since = None if decision == latest else at if done < decision else since
        self.t.deliveries[charger_id] = (latest, max(done, decision), decided_at, since)
        if decision == latest:
            for c in (c for c in self.t.connectors.values() if c.charger_id == charger_id):
                if c.connector_id in self.t.allocations:
                    steps = self.t.planned.get(c.connector_id, ())
                    self.t.held_w[c.connector_id] = max(
                        [self.t.allocations[c.connector_id], *(w for _, w in steps)]
                    )

    def owed(self, decided_before: datetime) -> list[int]:
        rows = self.t.deliveries.items()
        return sorted(c for c, (decision, done, at, _) in rows if done < decision and at <= decided_before)

    def owing(self) -> dict[int, datetime]:
        rows = sorted(self.t.deliveries.items())
        return {c: since or at for c, (decision, done, at, since) in rows if done < decision}

    def held(self) -> dict[int, int]:
        return dict(sorted(self.t.held_w.items()))


class MemoryV2g(_Repository):
    def _booking_exists(self, booking_id: int) -> None:
        if booking_id not in self.t.bookings:
            raise NotFound(f"no booking {booking_id}")

    def hold_export_owed(self, booking_id: int, session_id: int) -> bool:
        return booking_id in self.t.v2g_terms and self.t.v2g_taken.get(booking_id) != session_id

    def export_taken(self, booking_id: int, session_id: int) -> None:
        if booking_id in self.t.v2g_terms:
            self.t.v2g_taken[booking_id] = session_id

    def exports_owed(self) -> Sequence[tuple[int, str]]:
        owed = []
        for session_id, s in self.t.newest_open_sessions():
            if s.booking_id not in self.t.v2g_terms:
                continue
            charger = self.t.chargers[self.t.connectors[s.connector_id].charger_id]
            if charger.ocpp_version == OcppVersion.V21 and self.t.v2g_taken.get(s.booking_id) != session_id:
                owed.append((session_id, charger.charge_point_id))
        return owed

    def set_terms(self, terms: ExportTerms) -> None:
        self._booking_exists(terms.booking_id)
        self.t.v2g_terms[terms.booking_id] = terms

    def terms(self, booking_id: int) -> ExportTerms | None:
        return self.t.v2g_terms.get(booking_id)

    def all_terms(self) -> Sequence[ExportTerms]:
        return [self.t.v2g_terms[b] for b in sorted(self.t.v2g_terms)]

    def record(self, booking_id: int) -> ExportRecord | None:
        return self.t.v2g_exports.get(booking_id)

    def lock_export(self, booking_id: int) -> None:
        """Units of work take turns already (the store's lock)."""

    def save_record(self, record: ExportRecord, at: datetime) -> None:
        self._booking_exists(record.booking_id)
        before = self.t.v2g_exports.get(record.booking_id)
        if before is None:
            self.t.v2g_exports[record.booking_id] = record
        elif not before.settled:
            # The buyer stays the one the record was first kept with.
            self.t.v2g_exports[record.booking_id] = dataclasses.replace(record, buyer=before.buyer)

    def resettle_record(self, record: ExportRecord, at: datetime, *, last_wh: int) -> bool:
        before = self.t.v2g_exports.get(record.booking_id)
        if before is None or not before.settled or before.last_wh != last_wh:
            return False
        self.t.v2g_exports[record.booking_id] = record
        return True

    def records(self) -> Sequence[ExportRecord]:
        return [self.t.v2g_exports[b] for b in sorted(self.t.v2g_exports)]

    def terms_of(self, booking_ids: Sequence[int]) -> dict[int, ExportTerms]:
        return {b: self.t.v2g_terms[b] for b in booking_ids if b in self.t.v2g_terms}

    def records_of(self, booking_ids: Sequence[int]) -> dict[int, ExportRecord]:
        return {b: self.t.v2g_exports[b] for b in booking_ids if b in self.t.v2g_exports}

    def host_buyer(self, host_id: int) -> ExportBuyer:
        return self.t.host_export_buyers.get(host_id, ExportBuyer.GRID)

    def set_host_buyer(self, host_id: int, buyer: ExportBuyer, at: datetime) -> None:
        if host_id not in self.t.hosts:
            raise NotFound(f"no host {host_id}")
        self.t.host_export_buyers[host_id] = buyer

    def settling(self, *, exclusive: bool) -> None:
        """Units of work take turns already (the store's lock)."""

    def add_settlement(self, settlement: GridSettlement) -> bool:
        if settlement.month in self.t.grid_settlements:
            return False
        self.t.grid_settlements[settlement.month] = settlement
        return True

    def settlement(self, month: str) -> GridSettlement | None:
        return self.t.grid_settlements.get(month)

    def settlements(self) -> Sequence[GridSettlement]:
        return [self.t.grid_settlements[m] for m in sorted(self.t.grid_settlements)]


class MemoryChargerFiles(_Repository):
    def add(
        self,
        token: str,
        kind: str,
        charge_point_id: str | None,
        name: str,
        at: datetime,
        content: bytes | None,
    ) -> ChargerFile:
        if token in self.t.files:
            raise InvalidRequest("a file with that token exists")  # as the unique constraint
        f = ChargerFile(self.store.next_id("charger_files"), token, kind, charge_point_id, name, at)
        if content is not None:
            f = dataclasses.replace(
                f, size=len(content), sha256=hashlib.sha256(content).hexdigest(), received_at=at
            )
        self.t.files[token] = (f, content)
        return f

    def by_token(self, token: str) -> ChargerFile:
        if token not in self.t.files:
            raise NotFound("no such file")
        return self.t.files[token][0]

    def content(self, token: str) -> bytes | None:
        self.by_token(token)
        return self.t.files[token][1]

    def fill(self, token: str, content: bytes, sha256: str, at: datetime) -> bool:
        f, held = self.t.files.get(token, (None, None))
        if f is None or held is not None:
            return False
        self.t.files[token] = (
            dataclasses.replace(f, size=len(content), sha256=sha256, received_at=at),
            content,
        )
        return True

    def of_charger(self, charge_point_id: str) -> Sequence[ChargerFile]:
        found = [f for f, _ in self.t.files.values() if f.charge_point_id == charge_point_id]
        return sorted(found, key=lambda f: f.file_id)

    def firmware(self) -> Sequence[ChargerFile]:
        return sorted((f for f, _ in self.t.files.values() if f.kind == "firmware"), key=lambda f: f.file_id)


# ---- fleet-share hubs ----------------------------------------------------------------------------
class MemoryFleets(_Repository):
    def add_account(self, name: str, driver_id: int, created_at: datetime) -> int:
        if self.account_of_driver(driver_id) is not None:
            raise InvalidRequest(f"driver {driver_id} already charges for a fleet")
        if driver_id not in self.t.drivers:
            raise DuplicateKey(f"no driver {driver_id}")  # as the foreign key
        fleet_id = self.store.next_id("fleet_accounts")
        self.t.fleet_accounts[fleet_id] = FleetAccount(fleet_id, name, driver_id)
        return fleet_id

    def account(self, fleet_id: int) -> FleetAccount:
        if fleet_id not in self.t.fleet_accounts:
            raise NotFound(f"no fleet {fleet_id}")
        return self.t.fleet_accounts[fleet_id]

    def account_of_driver(self, driver_id: int) -> FleetAccount | None:
        return next((a for a in self.t.fleet_accounts.values() if a.driver_id == driver_id), None)

    def accounts(self) -> Sequence[FleetAccount]:
        return sorted(self.t.fleet_accounts.values(), key=lambda a: a.fleet_id)

    def add_contract(
        self,
        fleet_id: int,
        rule: BlockRule,
        policy: ContractPolicy,
        connector_ids: Sequence[int],
        created_at: datetime,
    ) -> int:
        self.account(fleet_id)
        contract_id = self.store.next_id("fleet_contracts")
        connectors = tuple(sorted(dict.fromkeys(connector_ids)))
        self.t.fleet_contracts[contract_id] = FleetContract(
            contract_id, fleet_id, rule, policy, connectors, created_at
        )
        return contract_id

    def contract(self, contract_id: int) -> FleetContract:
        if contract_id not in self.t.fleet_contracts:
            raise NotFound(f"no contract {contract_id}")
        return self.t.fleet_contracts[contract_id]

    def contracts_of(self, fleet_id: int) -> Sequence[FleetContract]:
        return [c for _, c in sorted(self.t.fleet_contracts.items()) if c.fleet_id == fleet_id]

    def add_occurrence(self, booking_id: int, contract_id: int, fleet_id: int) -> None:
        if booking_id in self.t.fleet_occurrences:
            raise DuplicateKey(f"booking {booking_id} is an occurrence already")
        self.t.fleet_occurrences[booking_id] = Occurrence(booking_id, contract_id, fleet_id)

    def occurrence(self, booking_id: int) -> Occurrence | None:
        return self.t.fleet_occurrences.get(booking_id)

    def occurrences(
        self, *, fleet_id: int | None = None, contract_id: int | None = None
    ) -> Sequence[Occurrence]:
        return [
            o
            for _, o in sorted(self.t.fleet_occurrences.items())
            if (fleet_id is None or o.fleet_id == fleet_id)
            and (contract_id is None or o.contract_id == contract_id)
        ]

    def add_invoice(
        self, fleet_id: int, month: str, lines: Sequence[InvoiceLine], total: int, at: datetime
    ) -> int | None:
        if self.invoice(fleet_id, month) is not None or any(x.entry_id in self.t.fleet_lines for x in lines):
            return None
        invoice_id = self.store.next_id("fleet_invoices")
        self.t.fleet_invoices[invoice_id] = IssuedInvoice(invoice_id, fleet_id, month, total, at)
        for x in lines:
            self.t.fleet_lines[x.entry_id] = (invoice_id, x)
        return invoice_id

    def invoice(self, fleet_id: int, month: str) -> IssuedInvoice | None:
        return next(
            (i for i in self.t.fleet_invoices.values() if i.fleet_id == fleet_id and i.month == month), None
        )

    def invoices(self, fleet_id: int | None = None) -> Sequence[IssuedInvoice]:
        found = [i for i in self.t.fleet_invoices.values() if fleet_id is None or i.fleet_id == fleet_id]
        return sorted(found, key=lambda i: (i.fleet_id, i.month))

    def lines_of(self, invoice_id: int) -> Sequence[InvoiceLine]:
        found = [x for owner, x in self.t.fleet_lines.values() if owner == invoice_id]
        return sorted(found, key=lambda x: (x.at, x.entry_id))

    def billed_entries(self, fleet_id: int) -> set[str]:
        return {
            entry_id
            for entry_id, (invoice_id, _) in self.t.fleet_lines.items()
            if self.t.fleet_invoices[invoice_id].fleet_id == fleet_id
        }

    def record_payment(self, invoice_id: int, paid: int, at: datetime, *, expected: int) -> bool:
        invoice = self.t.fleet_invoices.get(invoice_id)
        if invoice is None or invoice.paid != expected:
            return False
        self.t.fleet_invoices[invoice_id] = dataclasses.replace(invoice, paid=paid, paid_at=at)
        return True

    def claim_request(self, fleet_id: int, kind: str, key: str, fingerprint: str, at: datetime) -> bool:
        if (fleet_id, kind, key) in self.t.fleet_requests:
            return False
        self.t.fleet_requests[(fleet_id, kind, key)] = SeenRequest(fingerprint, None, None, at)
        return True

    def answer_request(self, fleet_id: int, kind: str, key: str, ref_id: int, value: int | None) -> None:
        seen = self.t.fleet_requests[(fleet_id, kind, key)]
        self.t.fleet_requests[(fleet_id, kind, key)] = dataclasses.replace(seen, ref_id=ref_id, value=value)

    def request_seen(self, fleet_id: int, kind: str, key: str) -> SeenRequest | None:
        return self.t.fleet_requests.get((fleet_id, kind, key))
