"""Tables shared by SQLite and PostgreSQL, plus each dialect's own spatial and exclusion DDL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    column,
    false,
    table,
    text,
)
from sqlalchemy.types import TypeDecorator

from chargeshare.adapters.sql.folded import Folded
from chargeshare.adapters.sql.sqlite_geo import RTREE_OFFER_COLUMNS, RTREE_POWER_COLUMN
from chargeshare.domain.booking import LIVE_STATES
from chargeshare.domain.charger import ConnectorType
from chargeshare.domain.grid_limits import MIN_CHARGING_W

# The rows the command re-send reads each round (partial indexes: few among all ever made).
OWED_RESERVATION = "reservation IN ('sent', 'accepted')"
# A held quote the sweep may delete once expired: no booking used it.
UNUSED_QUOTE = "booking_id IS NULL"
OPEN_SESSION = "status = 'charging'"
# Open sessions whose connector was reported free: what the lost-stop sweep looks for each round.
FREED_OPEN_SESSION = "status = 'charging' AND freed_at IS NOT NULL"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out, on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Instants converted lately and their text: a unit of work binds the clock's few instants many
# times. Keyed by the UTC instant: values of one zone compare by wall time, fold ignored, so two
# instants an hour apart in a fold would share a key; a naive value equals no key. Emptied when
# full: a bound, not a policy.
_texts: dict[datetime, str] = {}
_TEXTS_HELD = 256


def utc_to_sqlite_text(value: datetime | None) -> str | None:
    """`UTCDateTime`'s bind conversion on SQLite in one step: the same text SQLAlchemy's chain
    (`process_bind_param`, then SQLite's DATETIME storage format) gives, without the chain's
    per-call overhead: the store's direct statements bind several per frame."""
    if value is None:
        return None
    text = _texts.get(value)
    if text is not None:
        return text
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    text = utc.replace(tzinfo=None).isoformat(" ", "microseconds")
    if len(_texts) >= _TEXTS_HELD:
        _texts.clear()
    _texts[utc] = text
    return text


# Texts read lately and their instants: the rows a DES reads again (a session's start, a booking's
# window) hold the same few. Datetimes are immutable, so one may be handed out many times.
_instants: dict[str, datetime] = {}


def sqlite_text_to_utc(value: str) -> datetime:
    """`UTCDateTime`'s result conversion on SQLite in one step, as SQLAlchemy's chain gives it
    (SQLite's DATETIME parse, then `process_result_value`), for a value that is not NULL."""
    instant = _instants.get(value)
    if instant is not None:
        return instant
    parsed = datetime.fromisoformat(value)
    instant = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if len(_instants) >= _TEXTS_HELD:
        _instants.clear()
    _instants[value] = instant
    return instant


metadata = MetaData()

hosts = Table(
    "hosts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
)

drivers = Table(
    "drivers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("id_tag", String(255), nullable=False, unique=True),  # OCPP 2.1 idToken: up to 255
)
# CiString: two drivers' tags never differ only in the case of their letters (`domain.tokens`).
Index("ux_drivers_id_tag_folded", Folded(drivers.c.id_tag), unique=True)

chargers = Table(
    "chargers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("charge_point_id", String(64), nullable=False, unique=True),
    # Indexed so a host's chargers, and their bookings, are read from the host (migration 0041).
    Column("host_id", ForeignKey("hosts.id"), nullable=False, index=True),
    Column("title", String(200), nullable=False, default=""),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("price_per_kwh", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("ocpp_version", String(8)),
    Column("last_seen_at", UTCDateTime()),
    Column("password_hash", String(200)),  # null: no Basic auth set (only if unknown chargers are allowed)
    Column("boot_policy", String(8), nullable=False, server_default="Accepted"),
    # What its connectors offer, for the map search's index (kept by `chargers.py` whenever the
    # connectors change): the highest power of any connector, and of each type (-1: none of it).
    # A search checks these inside the spatial index, so a charger that cannot match is skipped
    # without being read; connector status and bookings change too often to live there.
    Column("best_power_w", Integer, nullable=False, server_default="0"),
    *(
        Column(f"{kind.value}_power_w", Integer, nullable=False, server_default="-1")
        for kind in ConnectorType
    ),
)

# The column of `chargers` holding the best power of each type.
POWER_COLUMN = {kind: f"{kind.value}_power_w" for kind in ConnectorType}
# What the map search's index holds beside the location (PostGIS), in this order.
OFFER_COLUMNS = ("price_per_kwh", "best_power_w", *POWER_COLUMN.values())
assert set(RTREE_POWER_COLUMN) == {kind.value for kind in ConnectorType}, "SQLite's R*Tree layout"

notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("host_id", ForeignKey("hosts.id"), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("body", String(1000), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("delivered_at", UTCDateTime()),  # the outbox: a sender marks what it has delivered
)

connectors = Table(
    "connectors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("charger_id", ForeignKey("chargers.id"), nullable=False),
    Column("connector_no", Integer, nullable=False),
    Column("type", String(16), nullable=False),
    Column("max_power_w", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    # When the charger last reported it Available (its own time for the report, else when it came):
    # a start older than that, arriving while the connector is still reported free, is over.
    Column("available_at", UTCDateTime()),
    # The time of the report its status came from (the charger's own, at most when it came; else
    # when it came): a report older than that is late and leaves the status as it is.
    Column("status_at", UTCDateTime()),
    # Highest lock fencing token that has written a booking for this connector.
    Column("fence_token", BigInteger, nullable=False, default=0),
    UniqueConstraint("charger_id", "connector_no"),
)

availability = Table(
    "availability",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("charger_id", ForeignKey("chargers.id"), nullable=False, index=True),
    Column("weekday", Integer, nullable=False),
    Column("start_minute", Integer, nullable=False),
    Column("end_minute", Integer, nullable=False),
)

bookings = Table(
    "bookings",
    metadata,
    Column("id", Integer, primary_key=True),
    # Indexed so a driver's bookings are read without every booking (migration 0041).
    Column("driver_id", ForeignKey("drivers.id"), nullable=False, index=True),
    Column("connector_id", ForeignKey("connectors.id"), nullable=False),
    Column("starts_at", UTCDateTime(), nullable=False),
    Column("ends_at", UTCDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("max_energy_wh", Integer, nullable=False),
    Column("price_per_kwh", Integer, nullable=False),
    Column("hold_amount", Integer, nullable=False),
    Column("payment_ref", String(64)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("fee", Integer, nullable=False, default=0),  # no-show or late-cancellation fee, pence
    Column("cancelled_by", String(8)),  # driver | host
    Column("reservation", String(16), nullable=False, default="none"),  # OCPP ReserveNow state
    # Another car, or a fault, held the connector after the start: a no-show is excused its fee.
    Column("connector_held", Boolean, nullable=False, default=False, server_default=false()),
    Index("ix_bookings_connector_period", "connector_id", "starts_at", "ends_at"),
    # Reservations a charger may still be owed an answer on (`bookings.reservations_owed`): few rows
    # among all bookings ever made, read every round by the process holding the chargers' links.
    Index(
        "ix_bookings_reservation_owed",
        "connector_id",
        sqlite_where=text(OWED_RESERVATION),
        postgresql_where=text(OWED_RESERVATION),
    ),
)

# A driver's booking requests under an Idempotency-Key: a request sent again (its answer was lost)
# finds the booking the first one made instead of conflicting with it.
booking_requests = Table(
    "booking_requests",
    metadata,
    Column("driver_id", ForeignKey("drivers.id"), primary_key=True),
    Column("request_key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),  # of the request's body: a key names one request
    Column("booking_id", ForeignKey("bookings.id"), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("booking_id", ForeignKey("bookings.id"), nullable=False, unique=True),
    Column("connector_id", ForeignKey("connectors.id"), nullable=False),
    Column("id_tag", String(255), nullable=False),  # the token the charger presented
    Column("started_at", UTCDateTime(), nullable=False),
    Column("meter_start_wh", BigInteger, nullable=False),
    Column("meter_last_wh", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("stopped_at", UTCDateTime()),
    Column("meter_stop_wh", BigInteger),
    Column("billed_wh", BigInteger),
    Column("cost", Integer),  # energy cost + idle fee, pence
    Column("idle_since", UTCDateTime()),  # the car stopped drawing power (SuspendedEV/Finishing)
    Column("idle_fee", Integer, nullable=False, default=0),
    # The charger reported the connector free with the session still open: its stop is awaited
    # until the lost-stop grace has passed, then the session is closed on its last reading.
    Column("freed_at", UTCDateTime()),
    # Billed without a measurement: the start register was never read, or nothing was read after it.
    Column("unmetered", Boolean, nullable=False, default=False, server_default=false()),
    # The reading of a stop that came after the session was closed as lost and billed: the energy
    # above its billed stop reading was delivered and not billed (see ChargingService._late_stop).
    Column("late_stop_wh", BigInteger),
    Column("late_stop_at", UTCDateTime()),
    # Closed by the lost-stop sweep on its last reading, not by its charger's stop: only such a
    # session takes a late stop's reading.
    Column("closed_lost", Boolean, nullable=False, default=False, server_default=false()),
    # A late stop billed the session in full (its capture untried): when. And the export register's
    # reading a late stop carried, when above the one credited: credited with a rebill, else kept
    # with `late_stop_wh` as export not credited.
    Column("late_rebilled_at", UTCDateTime()),
    Column("late_export_wh", BigInteger),
    # A retried StartTransaction carries the same key and must map to the same transaction.
    UniqueConstraint("connector_id", "id_tag", "meter_start_wh", "started_at", name="uq_session_start_key"),
    # Open sessions: the stops owed and the lost-stop sweep read only these.
    Index(
        "ix_sessions_open",
        "connector_id",
        sqlite_where=text(OPEN_SESSION),
        postgresql_where=text(OPEN_SESSION),
    ),
    # The lost-stop sweep's lookup, in as many rows as it may find rather than every open session.
    Index(
        "ix_sessions_freed",
        "freed_at",
        sqlite_where=text(FREED_OPEN_SESSION),
        postgresql_where=text(FREED_OPEN_SESSION),
    ),
)

# OCPP 2.0.1: the charger names its transactions (a string unique per charger); this maps each onto
# our session, durably, and keeps the highest TransactionEvent seqNo applied so a replay changes nothing.
# A table of its own, so databases made before it gain it on the next start.
charger_transactions = Table(
    "charger_transactions",
    metadata,
    Column("session_id", ForeignKey("sessions.id"), primary_key=True),
    Column("charger_id", ForeignKey("chargers.id"), nullable=False),
    Column("transaction_id", String(36), nullable=False),
    Column("seq_no", BigInteger),
    # Opened before any meter reading: the first reading becomes the session's meter start.
    Column("meter_start_pending", Boolean, nullable=False, default=False),
    UniqueConstraint("charger_id", "transaction_id", name="uq_charger_transaction"),
    # By the id alone: a charger naming a transaction it never opened is looked up among the others'.
    Index("ix_charger_transactions_transaction_id", "transaction_id"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("booking_id", ForeignKey("bookings.id"), index=True),  # null for payouts
    # Unique: the database itself refuses to resolve one hold twice.
    Column("pending_id", ForeignKey("ledger_entries.id"), unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

ledger_postings = Table(
    "ledger_postings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("entry_id", ForeignKey("ledger_entries.id"), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("account", String(64), nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
)

# The SQLite R*Tree virtual table, described for queries only (created by SQLITE_DDL, not create_all).
charger_rtree = table(
    "charger_rtree",
    column("id"),
    column("min_lon"),
    column("max_lon"),
    column("min_lat"),
    column("max_lat"),
    *(column(name) for name in RTREE_OFFER_COLUMNS),
)

payment_outbox = Table(
    "payment_outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("booking_id", ForeignKey("bookings.id"), nullable=False, index=True),
    Column("step", String(16), nullable=False),  # capture | release | fee | charge | void_auth
    Column("amount", Integer, nullable=False),
    # The gateway call's idempotency key; unique so a step is queued once however often it is asked for.
    Column("idempotency_key", String(80), nullable=False, unique=True),
    Column("status", String(8), nullable=False),  # pending | done | dead
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("last_error", String(500)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("done_at", UTCDateTime()),
    # A worker's claim: it alone may finish the step until the lease runs out (then anyone may).
    Column("claimed_by", String(64)),
    Column("lease_until", UTCDateTime()),
    Column("reference", String(64)),  # the provider's authorisation this step made, if any
    # Authorisations declined for a step that charges afresh: the next is asked under a new key.
    Column("declines", Integer, nullable=False, default=0, server_default="0"),
    Index("ix_payment_outbox_due", "status", "next_attempt_at"),
)

# Sign-in accounts (new tables only, so databases made before them gain them on the next start).
accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(254), nullable=False, unique=True),  # normalised: trimmed, lower case
    Column("password_hash", String(200), nullable=False),  # argon2id, with its parameters
    Column("role", String(8), nullable=False),  # driver | host | admin
    Column("driver_id", ForeignKey("drivers.id"), unique=True),
    Column("host_id", ForeignKey("hosts.id"), unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

host_kyc = Table(
    "host_kyc",
    metadata,
    Column("host_id", ForeignKey("hosts.id"), primary_key=True),  # no row: pending
    Column("status", String(16), nullable=False),  # pending | verified | rejected
    Column("updated_at", UTCDateTime(), nullable=False),
)

# The operator's check of a driver's payout details, before V2G export credits are paid to them.
driver_kyc = Table(
    "driver_kyc",
    metadata,
    Column("driver_id", ForeignKey("drivers.id"), primary_key=True),  # no row: pending
    Column("status", String(16), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint("status IN ('pending', 'verified', 'rejected')", name="ck_driver_kyc_status"),
)

# What a host gave at onboarding for HMRC's digital platform reporting (domain/seller_details.py),
# checked and normalised before it is written. Optional text is '' rather than NULL; no bank: NULLs.
host_seller_details = Table(
    "host_seller_details",
    metadata,
    Column("host_id", ForeignKey("hosts.id"), primary_key=True),
    Column("kind", String(10), nullable=False),  # individual | entity
    Column("first_names", String(200), nullable=False),
    Column("last_name", String(200), nullable=False),
    Column("legal_name", String(200), nullable=False),
    Column("birth_date", Date),  # individuals only
    Column("address_line1", String(200), nullable=False),
    Column("address_line2", String(200), nullable=False),
    Column("city", String(200), nullable=False),
    Column("postcode", String(20), nullable=False),
    Column("country", String(2), nullable=False),
    Column("tax_id_kind", String(4), nullable=False),  # nino | utr | tin
    Column("tax_id", String(200), nullable=False),
    Column("tax_id_country", String(2), nullable=False),
    Column("company_number", String(8), nullable=False),
    Column("sort_code", String(8)),
    Column("account_number", String(8)),
    Column("iban", String(34)),
    Column("updated_at", UTCDateTime(), nullable=False),
)

charger_notes = Table(
    "charger_notes",
    metadata,
    Column("charger_id", ForeignKey("chargers.id"), primary_key=True),
    Column("access_notes", String(2000), nullable=False),  # for drivers with a booking: gate code, parking
)

# What a charger did that it must not: a frame naming another charger's transaction, for example.
# The charge point id is kept as given (no foreign key): an unregistered charger can be the culprit.
security_events = Table(
    "security_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("charge_point_id", String(64), nullable=False, index=True),
    Column("kind", String(48), nullable=False),
    Column("detail", String(500), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # "backend": what we saw the charger do; "charger": a SecurityEventNotification it sent itself.
    Column("source", String(8), nullable=False, default="backend", server_default="backend"),
)

# What registered chargers report about themselves, as received, oldest first: firmware, log and
# diagnostics status, device-model and monitoring reports, charging limits, EV charging needs,
# certificate requests, vendor data. Operators' views (the current firmware status, the device
# model, the limits in force) are folded from it (chargeshare/domain/charger_reports.py).
charger_reports = Table(
    "charger_reports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("charger_id", ForeignKey("chargers.id"), nullable=False),
    Column("action", String(48), nullable=False),
    Column("summary", String(500), nullable=False),
    Column("body", JSON, nullable=False),  # the message's payload
    Column("reported_at", UTCDateTime()),  # the charger's own timestamp, when the message has one
    Column("received_at", UTCDateTime(), nullable=False),
    Index("ix_charger_reports_charger_action", "charger_id", "action"),
)

# Drivers' id tokens: RFID cards, app and contract ids. The driver's booking id tag (drivers.id_tag)
# is a token too, Accepted unless a row here of the same value says otherwise.
id_tokens = Table(
    "id_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("driver_id", ForeignKey("drivers.id"), nullable=False, index=True),
    Column("value", String(255), nullable=False, unique=True),  # OCPP 2.1 idToken: up to 255
    Column("type", String(16), nullable=False),
    Column("status", String(8), nullable=False),
    Column("expires_at", UTCDateTime()),
    Column("group_id", String(255)),
    Column("master_pass", Boolean, nullable=False, default=False, server_default=false()),
    Column("created_at", UTCDateTime(), nullable=False),
)
# Nor two tokens' values (a token's and another driver's tag: see `tokens.SqlIdTokens.add`).
Index("ux_id_tokens_value_folded", Folded(id_tokens.c.value), unique=True)

# Chargers whose host lets any valid token charge without a booking, at this price per kWh.
walk_in_chargers = Table(
    "walk_in_chargers",
    metadata,
    Column("charger_id", ForeignKey("chargers.id"), primary_key=True),
    Column("price_per_kwh", Integer, nullable=False),
)

# A charger's settings under the UK's Smart Charge Points Regulations 2021: the host's choices and the
# operator's DSR flag, sent to the charger on boot and on change. No row: the charger's own defaults
# (the regulations' pre-configured ones) stand, and nothing is sent.
# Firmware published for chargers, and logs they upload, each behind an unguessable URL token.
charger_files = Table(
    "charger_files",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # firmware | log
    Column("charge_point_id", String(64)),
    Column("name", String(255), nullable=False),
    Column("content", LargeBinary),  # NULL: a slot awaiting its upload
    Column("size", BigInteger),
    Column("sha256", String(64)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("received_at", UTCDateTime()),
    Index("ix_charger_files_charger", "charge_point_id"),
)

charger_smart_settings = Table(
    "charger_smart_settings",
    metadata,
    Column("charger_id", ForeignKey("chargers.id"), primary_key=True),
    Column("randomised_delay_max_s", Integer, nullable=False),
    Column("randomised_delay_override", Boolean, nullable=False),
    Column("default_charging_hours", Boolean, nullable=False),
    Column("demand_side_response", Boolean, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint("randomised_delay_max_s BETWEEN 0 AND 1800", name="ck_charger_smart_settings_delay_max"),
)

# Site and feeder supply limits (chargeshare/domain/grid_limits.py): feeders the DNO sets a limit
# for, hosts' sites (a main fuse shared with the house) on them, the chargers on each site, the
# flexibility events lowering a limit for a window, and each connector's limit as last decided.
grid_feeders = Table(
    "grid_feeders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("limit_w", Integer, nullable=False),
    CheckConstraint(f"limit_w >= {MIN_CHARGING_W}", name="ck_grid_feeders_limit"),
)

grid_sites = Table(
    "grid_sites",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("host_id", ForeignKey("hosts.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("limit_w", Integer, nullable=False),
    Column("house_load_w", Integer, nullable=False),
    Column("feeder_id", ForeignKey("grid_feeders.id")),
    # When the reading in force was measured (NULL: none yet): an older one is not written over it.
    Column("house_load_at", UTCDateTime()),
    CheckConstraint(f"limit_w >= {MIN_CHARGING_W}", name="ck_grid_sites_limit"),
    CheckConstraint("house_load_w >= 0", name="ck_grid_sites_house_load"),
    Index("ix_grid_sites_host", "host_id"),
)

grid_site_chargers = Table(
    "grid_site_chargers",
    metadata,
    Column("charger_id", ForeignKey("chargers.id"), primary_key=True),
    Column("site_id", ForeignKey("grid_sites.id"), nullable=False),
    Index("ix_grid_site_chargers_site", "site_id"),
)

grid_flex_events = Table(
    "grid_flex_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("scope", String(16), nullable=False),  # site | feeder
    Column("target_id", Integer, nullable=False),
    Column("limit_w", Integer, nullable=False),
    Column("starts_at", UTCDateTime(), nullable=False),
    Column("ends_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    CheckConstraint("limit_w >= 0", name="ck_grid_flex_events_limit"),
    Index("ix_grid_flex_events_ends", "ends_at"),
)

grid_allocations = Table(
    "grid_allocations",
    metadata,
    Column("connector_id", ForeignKey("connectors.id"), primary_key=True),
    Column("limit_w", Integer, nullable=False),
    Column("decided_at", UTCDateTime(), nullable=False),
    # The most the connector may hold since its charger last acknowledged all it was sent (its
    # limits and steps then, and every limit decided since); NULL: never acknowledged.
    Column("held_w", Integer),
)

# The steps a connector's decided limit is already known to take later (flexibility events'
# edges within the look-ahead): to limit_w at `at`, each in turn.
grid_allocation_steps = Table(
    "grid_allocation_steps",
    metadata,
    Column("connector_id", ForeignKey("connectors.id"), primary_key=True),
    Column("at", UTCDateTime(), primary_key=True),
    Column("limit_w", Integer, nullable=False),
)

# Each charger's grid limits as a numbered decision, and the latest it acknowledged: while
# `delivered` is behind `decision` its limits are owed, sent again on connecting and by the sweep.
grid_deliveries = Table(
    "grid_deliveries",
    metadata,
    Column("charger_id", ForeignKey("chargers.id"), primary_key=True),
    Column("decision", Integer, nullable=False),
    Column("delivered", Integer, nullable=False),
    Column("decided_at", UTCDateTime(), nullable=False),
    # Since when the charger has owed a decision (its first one unacknowledged, or its last
    # acknowledgement of an older one); NULL while it owes none.
    Column("owed_since", UTCDateTime()),
    CheckConstraint("delivered <= decision", name="ck_grid_deliveries_order"),
)

# Bookings whose driver overrode the randomised delay and the default charging hours ("charge now"):
# the charger is told so when the session starts.
booking_overrides = Table(
    "booking_overrides",
    metadata,
    Column("booking_id", ForeignKey("bookings.id"), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    # The session whose charger took the override profile: any other open session of the booking is
    # still owed it (services/owed_commands).
    Column("taken_session", Integer),
)

# A record holds at least one refusal or unanswered send.
UNANSWERED_CHECK = "count >= 0 AND unanswered >= 0 AND count + unanswered >= 1"

# How often a session's charger refused a command owed to it (a V2G export, a driver's override),
# how many of its sends went unanswered, and when it is asked again; no `retry_at`: given up for
# the session (domain/command_backoff.py).
command_refusals = Table(
    "command_refusals",
    metadata,
    Column("session_id", ForeignKey("sessions.id"), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("last_at", UTCDateTime(), nullable=False),
    Column("retry_at", UTCDateTime()),
    Column("unanswered", Integer, nullable=False, server_default="0"),
    CheckConstraint("kind IN ('export', 'override')", name="ck_command_refusals_kind"),
    CheckConstraint(UNANSWERED_CHECK, name="ck_command_refusals_count"),
)

# A host's pricing: flat (each charger's listed price) or dynamic within the host's bounds, and the
# host's own smart tariff (day and night rates), below which dynamic pricing never sells.
host_pricing = Table(
    "host_pricing",
    metadata,
    Column("host_id", ForeignKey("hosts.id"), primary_key=True),
    Column("mode", String(8), nullable=False),  # flat | dynamic
    Column("floor_per_kwh", Integer, nullable=False),
    Column("ceiling_per_kwh", Integer, nullable=False),
    Column("own_day_per_kwh", Integer, nullable=False),
    Column("own_night_per_kwh", Integer, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint("0 < floor_per_kwh AND floor_per_kwh <= ceiling_per_kwh", name="ck_host_pricing_bounds"),
)

# The price per kWh each booking was quoted when it was made: its session is billed at it.
booking_quotes = Table(
    "booking_quotes",
    metadata,
    Column("booking_id", ForeignKey("bookings.id"), primary_key=True),
    Column("price_per_kwh", Integer, nullable=False),
    Column("mode", String(8), nullable=False),
    Column("quoted_at", UTCDateTime(), nullable=False),
    CheckConstraint("price_per_kwh >= 0", name="ck_booking_quotes_price"),
)

# Quotes held for the drivers they were shown to (chargeshare/domain/held_quotes.py): a booking may
# name one, and is then made at its price. `booking_id` is set once, by a conditional update, and is
# unique: a quote is used by one booking at most, and a booking uses one quote at most.
held_quotes = Table(
    "held_quotes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("driver_id", ForeignKey("drivers.id"), nullable=False),
    Column("charger_id", ForeignKey("chargers.id"), nullable=False),
    Column("starts_at", UTCDateTime(), nullable=False),
    Column("ends_at", UTCDateTime(), nullable=False),
    Column("immediate", Boolean, nullable=False),
    Column("price_per_kwh", Integer, nullable=False),
    Column("mode", String(8), nullable=False),
    Column("quoted_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("booking_id", ForeignKey("bookings.id"), unique=True),
    CheckConstraint("price_per_kwh >= 0", name="ck_held_quotes_price"),
    CheckConstraint("starts_at < ends_at AND quoted_at < expires_at", name="ck_held_quotes_times"),
    # The housekeeping sweep's search for quotes to delete: those no booking used, by expiry.
    Index(
        "ix_held_quotes_unused_expiry",
        "expires_at",
        sqlite_where=text(UNUSED_QUOTE),
        postgresql_where=text(UNUSED_QUOTE),
    ),
)


# V2G export (chargeshare/domain/v2g.py): the terms a driver sets for a booking, and its export as
# metered from the export register, with the credit once the session stopped.
v2g_terms = Table(
    "v2g_terms",
    metadata,
    Column("booking_id", ForeignKey("bookings.id"), primary_key=True),
    Column("price_per_kwh", Integer, nullable=False),
    Column("soc_floor_pct", Integer, nullable=False),
    Column("set_at", UTCDateTime(), nullable=False),
    # The session whose charger took the export permission and profile: any other open session of
    # the booking is still owed them (services/owed_commands).
    Column("export_taken_session", Integer),
    CheckConstraint("price_per_kwh BETWEEN 0 AND 1000", name="ck_v2g_terms_price"),
    CheckConstraint("soc_floor_pct BETWEEN 10 AND 100", name="ck_v2g_terms_floor"),
)

v2g_exports = Table(
    "v2g_exports",
    metadata,
    Column("booking_id", ForeignKey("bookings.id"), primary_key=True),
    Column("start_wh", BigInteger),
    Column("last_wh", BigInteger),
    Column("soc_pct", Integer),
    Column("lowest_soc_pct", Integer),
    Column("exported_wh", BigInteger),
    Column("credit", Integer),
    Column("updated_at", UTCDateTime(), nullable=False),
    # Fixed when the record is first written (the export's start): updates never touch it.
    Column("buyer", String(8), nullable=False, server_default="grid"),
    CheckConstraint("buyer IN ('grid', 'home')", name="ck_v2g_exports_buyer"),
)

# A host's choice of who buys its chargers' guests' export; no row: the grid buyer.
host_export_buyers = Table(
    "host_export_buyers",
    metadata,
    Column("host_id", ForeignKey("hosts.id"), primary_key=True),
    Column("buyer", String(8), nullable=False),
    Column("set_at", UTCDateTime(), nullable=False),
    CheckConstraint("buyer IN ('grid', 'home')", name="ck_host_export_buyers_buyer"),
)

# The grid buyer's payment of a month's export statement (chargeshare/domain/grid_settlement.py).
# The month is the key: two operators recording one payment at once write one row, one ledger entry.
grid_settlements = Table(
    "grid_settlements",
    metadata,
    Column("month", String(7), primary_key=True),
    Column("amount", BigInteger, nullable=False),
    Column("exports", Integer, nullable=False),
    # No foreign key: the row is claimed before its ledger entry is written, in the same transaction.
    Column("entry_id", String(64), nullable=False, unique=True),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("recorded_by", ForeignKey("accounts.id")),
    CheckConstraint("amount > 0", name="ck_grid_settlements_amount"),
)


# Fleet-share hubs: business accounts booking recurring blocks on hosts' chargers, paid on account.
# A fleet charges as a driver of its own (its vehicles' card tag), so its blocks are ordinary rows of
# `bookings` under the same no-overlap guarantee; `fleet_occurrences` marks which they are.
fleet_accounts = Table(
    "fleet_accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("driver_id", ForeignKey("drivers.id"), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

fleet_contracts = Table(
    "fleet_contracts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("fleet_id", ForeignKey("fleet_accounts.id"), nullable=False, index=True),
    Column("weekdays", String(16), nullable=False),  # "0,1,2,3,4": Monday = 0
    Column("start_minute", Integer, nullable=False),  # UK wall-clock minutes after midnight
    Column("end_minute", Integer, nullable=False),
    Column("first_day", Date, nullable=False),
    Column("last_day", Date, nullable=False),
    Column("notice_s", Integer, nullable=False),
    Column("late_penalty", Integer, nullable=False),  # pence per occurrence cancelled inside the notice
    Column("created_at", UTCDateTime(), nullable=False),
)

fleet_contract_connectors = Table(
    "fleet_contract_connectors",
    metadata,
    Column("contract_id", ForeignKey("fleet_contracts.id"), primary_key=True),
    Column("connector_id", ForeignKey("connectors.id"), primary_key=True),
)

fleet_occurrences = Table(
    "fleet_occurrences",
    metadata,
    Column("booking_id", ForeignKey("bookings.id"), primary_key=True),
    Column("contract_id", ForeignKey("fleet_contracts.id"), nullable=False, index=True),
    Column("fleet_id", ForeignKey("fleet_accounts.id"), nullable=False, index=True),
)

fleet_invoices = Table(
    "fleet_invoices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("fleet_id", ForeignKey("fleet_accounts.id"), nullable=False),
    Column("month", String(7), nullable=False),  # YYYY-MM, the UK calendar month
    Column("total", Integer, nullable=False),
    Column("issued_at", UTCDateTime(), nullable=False),
    Column("paid", Integer, nullable=False, default=0, server_default="0"),
    Column("paid_at", UTCDateTime()),
    # One invoice per fleet and month: issuing it again finds this one.
    UniqueConstraint("fleet_id", "month", name="uq_fleet_invoice_month"),
)

# A fleet's requests made under an Idempotency-Key: claimed (the key's row) in the unit of work
# that does the request, so a copy waits on the key and then answers with what the first made.
fleet_requests = Table(
    "fleet_requests",
    metadata,
    Column("fleet_id", ForeignKey("fleet_accounts.id"), primary_key=True),
    Column("kind", String(16), primary_key=True),  # "payment" or "block"
    Column("request_key", String(255), primary_key=True),
    Column("fingerprint", String(500), nullable=False),  # what was asked, to refuse a key reused
    Column("ref_id", Integer),  # the invoice paid, or the contract booked
    Column("value", Integer),  # a payment: what had been paid of the invoice after it
    Column("made_at", UTCDateTime(), nullable=False),
)

fleet_invoice_lines = Table(
    "fleet_invoice_lines",
    metadata,
    # Primary key: a ledger entry is billed on one invoice only.
    Column("entry_id", ForeignKey("ledger_entries.id"), primary_key=True),
    Column("invoice_id", ForeignKey("fleet_invoices.id"), nullable=False, index=True),
    Column("booking_id", ForeignKey("bookings.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # session | fee | penalty
    Column("at", UTCDateTime(), nullable=False),
    Column("amount", Integer, nullable=False),
    Column("energy_wh", BigInteger, nullable=False),
)

# The simulated payment provider's own books, in the same database so they survive a restart and
# are shared by every server process (a real provider keeps its books itself).
sim_gateway_holds = Table(
    "sim_gateway_holds",
    metadata,
    Column("id", Integer, primary_key=True),  # the reference is made from it: never repeats
    Column("customer", String(64), nullable=False),
    Column("amount", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("captured", Integer, nullable=False, default=0),
    Column("state", String(16), nullable=False),  # authorized -> captured | released | expired
)

sim_gateway_replies = Table(
    "sim_gateway_replies",
    metadata,
    Column("idempotency_key", String(120), primary_key=True),
    Column("approved", Boolean),  # authorisations: the answer given; null for captures and releases
    Column("reference", String(64)),
    Column("reason", String(200)),
)

# Its knobs (outage, latency, declines), set by tests and scenario faults from any process.
sim_gateway_settings = Table(
    "sim_gateway_settings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("settings", String(2000), nullable=False),
)

# The housekeeping sweep's lookups (every 30 s): bookings by status and start, chargers by status and
# last sign of life, so each sweep reads what is due rather than every row. Plain DDL valid on both
# dialects, run when a database is created.
HOUSEKEEPING_INDEX_DDL = [
    "CREATE INDEX IF NOT EXISTS ix_bookings_status_start ON bookings (status, starts_at)",
    "CREATE INDEX IF NOT EXISTS ix_chargers_status_seen ON chargers (status, last_seen_at)",
]

_live = ", ".join(f"'{s.value}'" for s in sorted(LIVE_STATES))

SQLITE_DDL = [
    # R*Tree spatial index: 32-bit float boxes rounded outward, so it is a safe prefilter; the
    # charger's offer as three more dimensions (`sqlite_geo`), so the search's filters need not
    # read the charger's row.
    "CREATE VIRTUAL TABLE IF NOT EXISTS charger_rtree USING rtree(id, min_lon, max_lon, min_lat, max_lat, "
    + ", ".join(RTREE_OFFER_COLUMNS)
    + ")",
]

POSTGRES_DDL = [
    "CREATE EXTENSION IF NOT EXISTS postgis",
    "CREATE EXTENSION IF NOT EXISTS btree_gist",
    "ALTER TABLE chargers ADD COLUMN IF NOT EXISTS geom geometry(Point, 4326) "
    "GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lon, lat), 4326)) STORED",
    "ALTER TABLE chargers ADD COLUMN IF NOT EXISTS location geography(Point, 4326) "
    "GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography) STORED",
    "CREATE INDEX IF NOT EXISTS ix_chargers_geom ON chargers USING gist (geom)",
    # The map search's nearest-first scan, with the offer beside the point (btree_gist) so the
    # price and power filters are checked in the index: a charger that cannot match costs no read.
    "CREATE INDEX IF NOT EXISTS ix_chargers_location_offer ON chargers USING gist (location, "
    + ", ".join(OFFER_COLUMNS)
    + ")",
    # The no-double-booking guarantee: live bookings on one connector never overlap.
    "DO $$ BEGIN "
    "ALTER TABLE bookings ADD CONSTRAINT ex_bookings_no_overlap EXCLUDE USING gist "
    "(connector_id WITH =, tstzrange(starts_at, ends_at, '[)') WITH &&) "
    f"WHERE (status IN ({_live})); "
    "EXCEPTION WHEN duplicate_object OR duplicate_table THEN NULL; END $$",
]
