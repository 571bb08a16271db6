"""Plain records that the store hands to services: data only, no behaviour, no ORM attached."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chargeshare.domain.booking import BookingStatus
from chargeshare.domain.charger import BootPolicy, ChargerStatus, ConnectorStatus, ConnectorType
from chargeshare.domain.geo import Point
from chargeshare.domain.session import SessionStatus
from chargeshare.ocpp import OcppVersion


@dataclass(frozen=True)
class ConnectorView:
    connector_id: int
    connector_no: int
    type: ConnectorType
    max_power_w: int
    status: ConnectorStatus


@dataclass(frozen=True)
class ChargerView:
    charger_id: int
    charge_point_id: str
    host_id: int
    title: str
    location: Point
    price_per_kwh: int
    status: ChargerStatus
    ocpp_version: OcppVersion | None
    last_seen_at: datetime | None
    connectors: tuple[ConnectorView, ...]
    distance_m: float | None = None  # set by radius searches
    boot_policy: BootPolicy = BootPolicy.ACCEPTED


@dataclass(frozen=True)
class DriverRecord:
    driver_id: int
    name: str
    id_tag: str


@dataclass(frozen=True)
class BookingRecord:
    booking_id: int
    driver_id: int
    connector_id: int
    charger_id: int
    host_id: int
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
    connector_held: bool = False  # found held by another car, or unusable, after its start


@dataclass(frozen=True)
class SessionRecord:
    session_id: int  # also the OCPP transactionId
    booking_id: int
    connector_id: int
    id_tag: str
    started_at: datetime
    meter_start_wh: int
    meter_last_wh: int
    status: SessionStatus
    stopped_at: datetime | None
    meter_stop_wh: int | None
    billed_wh: int | None
    cost: int | None  # energy cost + idle fee
    idle_since: datetime | None = None
    idle_fee: int = 0
    freed_at: datetime | None = None  # its connector was reported free before its stop arrived
    unmetered: bool = False  # billed without a measurement (see domain.session.unmetered)
    # Stops that came after the session was closed as lost and its capture tried: the highest
    # import reading kept (above the billed one; None if only export came), and when the last was.
    late_stop_wh: int | None = None
    late_stop_at: datetime | None = None
    closed_lost: bool = False  # closed by the lost-stop sweep, not by its charger's stop
    late_rebilled_at: datetime | None = None  # a late stop billed it in full (its capture untried)
    # The highest export register reading a late stop brought: up to the export record's reading it
    # was credited (with a rebill), above it left uncredited (kept, or worth less than a penny yet).
    late_export_wh: int | None = None


@dataclass(frozen=True)
class MeterAdvance:
    """A charging session after a reading was applied: what the meter path needs, in one round trip."""

    booking_id: int
    meter_start_wh: int
    meter_last_wh: int  # the highest reading so far, this one included
    max_energy_wh: int  # the booking's energy limit


@dataclass(frozen=True)
class OutboxItem:
    """One payment step waiting for (or done by) the gateway."""

    item_id: int
    booking_id: int
    step: str
    amount: int
    idempotency_key: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    done_at: datetime | None
    claimed_by: str | None = None  # the worker that alone may finish it, until the lease runs out
    lease_until: datetime | None = None
    reference: str | None = None  # the provider's authorisation this step made, if any
    # Authorisations the card declined for this step (one it charges afresh), or that lapsed before
    # its capture: each is the provider's answer to one request, so the next attempt asks anew.
    declines: int = 0


@dataclass(frozen=True)
class AccountRecord:
    account_id: int
    email: str
    password_hash: str
    role: str  # driver | host | admin
    driver_id: int | None
    host_id: int | None
    created_at: datetime

    @property
    def host(self) -> int:
        """The host this account acts for; asking it of a driver or admin account is a bug."""
        if self.host_id is None:
            raise ValueError(f"account {self.email} is not a host's")
        return self.host_id


@dataclass(frozen=True)
class HostRecord:
    host_id: int
    name: str
    kyc_status: str  # pending | verified | rejected


@dataclass(frozen=True)
class SecurityEvent:
    """Something a charger did that it must not (or reported itself), kept for the operator."""

    event_id: int
    charge_point_id: str
    kind: str
    detail: str
    at: datetime
    source: str = "backend"  # or "charger": a SecurityEventNotification it sent about itself


@dataclass(frozen=True)
class ChargerReport:
    """One message a registered charger sent about itself, kept as received."""

    report_id: int
    charger_id: int
    action: str  # the OCPP action, e.g. FirmwareStatusNotification
    summary: str  # one line for operators
    body: dict[str, Any]  # the payload
    reported_at: datetime | None  # the charger's own timestamp, when the message carries one
    received_at: datetime


@dataclass(frozen=True)
class StoredCredentials:
    """What a charger authenticates against: its registration, and its password's hash if any."""

    charger_id: int
    password_hash: str | None

    @property
    def fingerprint(self) -> str:
        """Names these credentials: a new password, or the id registered again, gives another.
        A link keeps the one it was opened with; a certificate is signed only while it holds."""
        return hashlib.sha256(f"{self.charger_id}\0{self.password_hash or ''}".encode()).hexdigest()


@dataclass(frozen=True)
class ChargerFile:
    """A file exchanged with chargers through the backend's own HTTP locations: a firmware image an
    operator published (served to chargers), or a log a charger was asked for (an upload slot
    until it arrives). `token` is the capability in its URL."""

    file_id: int
    token: str
    kind: str  # firmware | log
    charge_point_id: str | None  # the charger a log is from (None: firmware, for any)
    name: str
    created_at: datetime
    size: int | None = None  # None: a slot still waiting for its upload
    sha256: str | None = None
    received_at: datetime | None = None


@dataclass(frozen=True)
class BookingQuote:
    """The price per kWh a booking was quoted, fixed when it was made: what its session is billed at."""

    booking_id: int
    per_kwh: int
    mode: str  # "flat" | "dynamic"
    quoted_at: datetime
