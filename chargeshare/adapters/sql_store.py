"""The SQLAlchemy store: SQLite (file or memory, R*Tree) or PostgreSQL (PostGIS, exclusion constraint)."""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NamedTuple

from geoalchemy2 import Geography
from sqlalchemy import (
    Connection,
    Engine,
    Float,
    Integer,
    and_,
    bindparam,
    case,
    cast,
    create_engine,
    event,
    false,
    func,
    insert,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from chargeshare.adapters import sql_schema as t
from chargeshare.adapters.sql_direct import DirectStatement
from chargeshare.adapters.sql_id_lists import in_ids
from chargeshare.adapters.sqlite_geo import distance_expr, ensure_math_functions
from chargeshare.domain.availability import WeeklyWindow, covers
from chargeshare.domain.booking import LIVE_STATES, BookingStatus
from chargeshare.domain.charger import ChargerSpec, ChargerStatus, ConnectorStatus, ConnectorType
from chargeshare.domain.errors import BookingConflict, InvalidRequest, NotFound, StaleFencingToken
from chargeshare.domain.geo import BBox, Point
from chargeshare.domain.ledger import EntryKind, JournalEntry, Posting
from chargeshare.domain.search import SearchQuery
from chargeshare.domain.session import SessionStatus
from chargeshare.services.records import (
    AccountRecord,
    BookingRecord,
    ChargerView,
    ConnectorView,
    DriverRecord,
    HostRecord,
    MeterAdvance,
    OutboxItem,
    SecurityEvent,
    SessionRecord,
)

PG_EXCLUSION_VIOLATION = "23P01"
READ_ONLY = "chargeshare_read_only"  # execution option: begin a reading transaction


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if memory else None,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
            # Let SQLAlchemy's "begin" below issue BEGIN IMMEDIATE: every write transaction is
            # serialized, which is what makes the check-then-insert for bookings atomic.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.close()
            ensure_math_functions(dbapi_conn)  # the map search's distance is SQL arithmetic

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Readers take no write lock (a deferred BEGIN), so the map never waits on a booking.
            # Straight to the driver: this runs once per unit of work, and SQLAlchemy's own execution
            # path (events, result set-up) costs more than the statement.
            raw = conn.connection.driver_connection
            if raw.in_transaction:  # type: ignore[union-attr]
                return  # begun on the driver already (`SqlStore.transaction` on SQLite: `_on_the_driver`)
            raw.execute(  # type: ignore[union-attr]
                "BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE"
            )

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class SqlStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        # One shared in-memory connection cannot interleave transactions from several threads. It is
        # also held open for the store's life: checking it out of the pool for every unit of work
        # cost as much as the unit of work itself (the DES runs on it).
        memory = isinstance(self.engine.pool, StaticPool)
        self._memory_lock = threading.RLock() if memory else None
        self._memory_conn: Connection | None = None
        # A SQLite file: connections kept by the threads that asked (`hold_here`), and what runs on
        # one before each unit of work (a pooled connection gets the same from a "checkout" hook).
        self._held: dict[int, Connection] = {}
        self._held_lock = threading.Lock()
        self.unit_hooks: list[Callable[[Any, dict[Any, Any]], None]] = []

    def hold_here(self) -> None:
        """From now on, this thread's units of work (on a SQLite file) all use one connection of its
        own instead of a pool checkout each: for a thread running many small units one after another
        (the OCPP server's event loop), the checkout cost as much as a MeterValues' statement. The
        connections of threads that have ended are closed as another is taken."""
        if self.dialect != "sqlite" or self._memory_lock is not None or threading.get_ident() in self._held:
            return
        with self._held_lock:
            alive = {thread.ident for thread in threading.enumerate()}
            for ident in [i for i in self._held if i not in alive]:
                self._held.pop(ident).close()
            self._held[threading.get_ident()] = self.engine.connect()

    def create_schema(self) -> None:
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql(t.POSTGRES_DDL[0])
                conn.exec_driver_sql(t.POSTGRES_DDL[1])
            t.metadata.create_all(conn)
            for ddl in t.SQLITE_DDL if self.dialect == "sqlite" else t.POSTGRES_DDL[2:]:
                conn.exec_driver_sql(ddl)
            for ddl in t.HOUSEKEEPING_INDEX_DDL:
                conn.exec_driver_sql(ddl)

    def drop_schema(self) -> None:
        with self.engine.begin() as conn:
            if self.dialect == "sqlite":
                conn.exec_driver_sql("DROP TABLE IF EXISTS charger_rtree")
            t.metadata.drop_all(conn)

    @contextmanager
    def transaction(self) -> Iterator[SqlTransaction]:
        if self.dialect != "sqlite":
            with self.engine.begin() as conn:
                yield SqlTransaction(conn, self.dialect)
            return
        if self._memory_lock is None:
            held = self._held.get(threading.get_ident()) if self._held else None
            if held is not None:
                for hook in self.unit_hooks:
                    hook(held.connection.dbapi_connection, held.info)
                yield from self._on_the_driver(held)
                return
            with self.engine.connect() as conn:  # a checkout per unit of work (durability hooks it)
                yield from self._on_the_driver(conn)
            return
        with self._memory_lock:
            held = self._memory_conn
            if held is None or held.closed:
                held = self._memory_conn = self.engine.connect()
            yield from self._on_the_driver(held)

    def _on_the_driver(self, conn: Connection) -> Iterator[SqlTransaction]:
        """One SQLite unit of work begun and committed straight on the driver: SQLAlchemy's
        transaction objects and events cost more than the statements of a heartbeat. A statement
        that goes through `Connection.execute` makes SQLAlchemy begin too (its "begin" listener sees
        the driver already in a transaction and sends nothing); then SQLAlchemy commits or rolls back."""
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("BEGIN IMMEDIATE")
        try:
            yield SqlTransaction(conn, self.dialect)
        except BaseException:
            if conn.in_transaction():
                conn.rollback()
            elif raw.in_transaction:
                raw.rollback()
            raise
        if conn.in_transaction():
            conn.commit()
        else:
            raw.commit()

    @contextmanager
    def reading(self) -> Iterator[SqlTransaction]:
        """A transaction that only reads: on SQLite it does not take the write lock."""
        if self._memory_lock is not None:
            with self.transaction() as tx:
                yield tx
            return
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn, conn.begin():
            yield SqlTransaction(conn, self.dialect)

    def close(self) -> None:
        if self._memory_conn is not None:
            self._memory_conn.close()
            self._memory_conn = None
        with self._held_lock:
            for conn in self._held.values():
                conn.close()
            self._held.clear()
        self.engine.dispose()


def _booking(r: Mapping[Any, Any]) -> BookingRecord:
    return BookingRecord(
        booking_id=r["id"],
        driver_id=r["driver_id"],
        connector_id=r["connector_id"],
        charger_id=r["charger_id"],
        host_id=r["host_id"],
        starts_at=r["starts_at"],
        ends_at=r["ends_at"],
        status=BookingStatus(r["status"]),
        max_energy_wh=r["max_energy_wh"],
        price_per_kwh=r["price_per_kwh"],
        hold_amount=r["hold_amount"],
        payment_ref=r["payment_ref"],
        created_at=r["created_at"],
        fee=r["fee"],
        cancelled_by=r["cancelled_by"],
        reservation=r["reservation"],
    )


def _session(r: Mapping[Any, Any]) -> SessionRecord:
    return SessionRecord(
        session_id=r["id"],
        booking_id=r["booking_id"],
        connector_id=r["connector_id"],
        id_tag=r["id_tag"],
        started_at=r["started_at"],
        meter_start_wh=r["meter_start_wh"],
        meter_last_wh=r["meter_last_wh"],
        status=SessionStatus(r["status"]),
        stopped_at=r["stopped_at"],
        meter_stop_wh=r["meter_stop_wh"],
        billed_wh=r["billed_wh"],
        cost=r["cost"],
        idle_since=r["idle_since"],
        idle_fee=r["idle_fee"],
    )


_ENTRY_KINDS = {e.value: e for e in EntryKind}


def _journal(entries: Iterable[Sequence[Any]], postings: Iterable[Sequence[Any]]) -> list[JournalEntry]:
    """Journal entries from entry rows (`_ENTRY_COLUMNS`, in order) and (entry_id, account, amount)
    posting rows. Read by position: a run's report and invariants read the whole journal."""
    by_entry: dict[str, list[Posting]] = defaultdict(list)
    for entry_id, account, amount in postings:
        by_entry[entry_id].append(Posting(account, amount))
    return [
        JournalEntry(
            entry_id, _ENTRY_KINDS[kind], tuple(by_entry[entry_id]), created_at, booking_id, pending_id
        )
        for entry_id, kind, booking_id, pending_id, created_at in entries
    ]


def _outbox(r: Mapping[Any, Any]) -> OutboxItem:
    return OutboxItem(
        item_id=r["id"],
        booking_id=r["booking_id"],
        step=r["step"],
        amount=r["amount"],
        idempotency_key=r["idempotency_key"],
        status=r["status"],
        attempts=r["attempts"],
        next_attempt_at=r["next_attempt_at"],
        last_error=r["last_error"],
        created_at=r["created_at"],
        done_at=r["done_at"],
    )


_CHARGER_COLUMNS = (
    t.chargers.c.id,
    t.chargers.c.charge_point_id,
    t.chargers.c.host_id,
    t.chargers.c.title,
    t.chargers.c.lat,
    t.chargers.c.lon,
    t.chargers.c.price_per_kwh,
    t.chargers.c.status,
    t.chargers.c.ocpp_version,
    t.chargers.c.last_seen_at,
)
_CONNECTOR_TYPES = {e.value: e for e in ConnectorType}
_CONNECTOR_STATUSES = {e.value: e for e in ConnectorStatus}
_CHARGER_STATUSES = {e.value: e for e in ChargerStatus}


def _one_of(column: Any, values: Iterable[str]) -> Any:
    """`column IN (constants)` with one placeholder per constant, fixed when the statement is
    built: a plain `in_([...])` list expands on every execution, which `DirectStatement` refuses."""
    constants = [literal(v) for v in sorted(values)]
    return column.in_(constants) if constants else false()


_BOOKING_COLUMNS = select(
    t.bookings,
    t.connectors.c.charger_id,
    t.chargers.c.host_id,
).select_from(
    t.bookings.join(t.connectors, t.connectors.c.id == t.bookings.c.connector_id).join(
        t.chargers, t.chargers.c.id == t.connectors.c.charger_id
    )
)

# Hot-path statements, built once with bound parameters: executing the same statement object lets
# SQLAlchemy skip rebuilding the expression and recomputing its cache key on every call, which was
# most of the cost of a charger's frame on SQLite. Parameter names never match a column of the
# table an UPDATE writes (a matching key would become a SET clause).
_k, _s, _b = t.connectors.c, t.sessions.c, t.bookings.c
_CONNECTORS = select(_k.charger_id, _k.id, _k.connector_no, _k.type, _k.max_power_w, _k.status).order_by(
    _k.connector_no
)
_CONNECTORS_OF_MANY = _CONNECTORS.where(in_ids(_k.charger_id, "ids"))
_STATUS_OF_CONNECTORS = select(_k.id, _k.status).where(in_ids(_k.id, "ids"))
_CHARGER_BY_CP = select(*_CHARGER_COLUMNS).where(t.chargers.c.charge_point_id == bindparam("cp_id"))
_CHARGER_BY_ID = select(*_CHARGER_COLUMNS).where(t.chargers.c.id == bindparam("charger_pk"))
_TOUCH_CHARGER = (
    update(t.chargers)
    .where(t.chargers.c.charge_point_id == bindparam("cp_id"))
    .values(last_seen_at=bindparam("seen_at"))
)
# A StatusNotification's lookup: the charger's status and the id of the connector it names, if any.
_STATUS_AND_CONNECTOR = (
    select(t.chargers.c.status, _k.id)
    .select_from(
        t.chargers.outerjoin(
            t.connectors, and_(_k.charger_id == t.chargers.c.id, _k.connector_no == bindparam("no"))
        )
    )
    .where(t.chargers.c.charge_point_id == bindparam("cp_id"))
)
_CHARGER_ID_OF = select(t.chargers.c.id).where(t.chargers.c.charge_point_id == bindparam("cp_id"))
_SET_CONNECTORS_STATUS = (
    update(t.connectors)
    .values(status=bindparam("new_status"))
    .where(_k.charger_id == _CHARGER_ID_OF.scalar_subquery())
)
_SET_CONNECTOR_STATUS = _SET_CONNECTORS_STATUS.where(_k.connector_no == bindparam("no"))
_DRIVER_BY_TAG = select(t.drivers).where(t.drivers.c.id_tag == bindparam("tag"))
_BOOKING_BY_ID = _BOOKING_COLUMNS.where(_b.id == bindparam("booking_pk"))
_BOOKINGS = _BOOKING_COLUMNS.order_by(_b.id)
_BOOKINGS_IN_STATUS = _BOOKING_COLUMNS.where(_b.status == bindparam("in_status")).order_by(_b.id)
_CONNECTOR_OF_BOOKING = select(_b.connector_id).where(_b.id == bindparam("booking_pk"))
_BOOKING_FOR_START = _BOOKING_COLUMNS.where(
    _b.connector_id == bindparam("connector_pk"),
    _b.driver_id == bindparam("driver_pk"),
    _b.status == BookingStatus.CONFIRMED.value,
    _b.ends_at > bindparam("at"),
).order_by(_b.starts_at)
_SESSION_BY_ID = select(t.sessions).where(_s.id == bindparam("session_pk"))
_OPEN_SESSION = (
    select(t.sessions)
    .where(_s.connector_id == bindparam("connector_pk"), _s.status == SessionStatus.CHARGING.value)
    .order_by(_s.id.desc())
)


def _register_at_least(param: str) -> Any:
    """The session's last register reading, raised to the bound value if that is higher: a register
    only grows, so an old or replayed reading never moves it back."""
    return case((_s.meter_last_wh < bindparam(param), bindparam(param)), else_=_s.meter_last_wh)


# A reading applied to a charging session and what the meter path needs back, in one statement;
# the booking's energy limit comes along in a scalar subquery rather than a second round trip.
_ADVANCE_METER = (
    update(t.sessions)
    .where(
        _s.id == bindparam("session_pk"),
        _s.status == SessionStatus.CHARGING.value,
        # Only the charger the session runs on moves its meter.
        _s.connector_id.in_(select(_k.id).where(_k.charger_id == _CHARGER_ID_OF.scalar_subquery())),
    )
    .values(meter_last_wh=_register_at_least("reading"))
    .returning(
        _s.booking_id,
        _s.meter_start_wh,
        _s.meter_last_wh,
        # SQLite renders this `WHERE id = booking_id`: `id` resolves to the booking (innermost
        # scope) and only sessions has a booking_id, so it still means the booking of this session.
        select(_b.max_energy_wh).where(_b.id == _s.booking_id).scalar_subquery(),
    )
)
# The charge point id of the charger a session runs on.
_SESSION_CHARGER = (
    select(t.chargers.c.charge_point_id)
    .select_from(t.sessions.join(t.connectors, _k.id == _s.connector_id))
    .join(t.chargers, t.chargers.c.id == _k.charger_id)
    .where(_s.id == bindparam("session_pk"))
)
_MARK_IDLE = update(t.sessions).where(_s.id == bindparam("session_pk")).values(idle_since=bindparam("since"))
_MARK_IDLE_ONCE = _MARK_IDLE.where(_s.idle_since.is_(None))
_SILENT_CHARGERS = (
    select(*_CHARGER_COLUMNS)
    .where(t.chargers.c.status == ChargerStatus.ONLINE.value, t.chargers.c.last_seen_at < bindparam("before"))
    .order_by(t.chargers.c.id)
)
_DUE_PAYMENTS = (
    select(t.payment_outbox)
    .where(t.payment_outbox.c.status == "pending", t.payment_outbox.c.next_attempt_at <= bindparam("now"))
    .order_by(t.payment_outbox.c.next_attempt_at, t.payment_outbox.c.id)
    .limit(bindparam("most", type_=Integer))
)


# A session's and a booking's end, and the money that follows: the same for every session, so built
# once. Optional booking fields keep their value when not given (COALESCE with the column).
_o, _le, _lp = t.payment_outbox.c, t.ledger_entries.c, t.ledger_postings.c
_STOP_SESSION = (
    update(t.sessions)
    .where(_s.id == bindparam("session_pk"))
    .values(
        status=SessionStatus.STOPPED.value,
        stopped_at=bindparam("stop_at"),
        meter_stop_wh=bindparam("stop_wh"),
        meter_last_wh=_register_at_least("stop_wh"),
        billed_wh=bindparam("billed"),
        cost=bindparam("cost_p"),
        idle_fee=bindparam("idle_fee_p"),
    )
)
_UPDATE_BOOKING = (
    update(t.bookings)
    .where(_b.id == bindparam("booking_pk"))
    .values(
        status=bindparam("new_status"),
        ends_at=func.coalesce(bindparam("new_ends_at", type_=t.UTCDateTime()), _b.ends_at),
        payment_ref=func.coalesce(bindparam("new_ref", type_=_b.payment_ref.type), _b.payment_ref),
        fee=func.coalesce(bindparam("new_fee", type_=_b.fee.type), _b.fee),
        cancelled_by=func.coalesce(bindparam("new_by", type_=_b.cancelled_by.type), _b.cancelled_by),
    )
)
_SESSION_FOR_BOOKING = select(t.sessions).where(_s.booking_id == bindparam("booking_pk"))
_SESSION_BY_START_KEY = select(t.sessions).where(
    _s.connector_id == bindparam("connector_pk"),
    _s.id_tag == bindparam("tag"),
    _s.meter_start_wh == bindparam("start_wh"),
    _s.started_at == bindparam("start_at"),
)
_INSERT_SESSION = (
    insert(t.sessions)
    .values(
        booking_id=bindparam("booking_pk"),
        connector_id=bindparam("connector_pk"),
        id_tag=bindparam("tag"),
        started_at=bindparam("start_at"),
        meter_start_wh=bindparam("start_wh"),
        meter_last_wh=bindparam("start_wh"),
        status=SessionStatus.CHARGING.value,
        idle_fee=0,
    )
    .returning(_s.id)
)
_DRIVER_BY_ID = select(t.drivers).where(t.drivers.c.id == bindparam("driver_pk"))
_PAYMENT_BY_KEY = select(t.payment_outbox).where(_o.idempotency_key == bindparam("key"))
_ENQUEUE_PAYMENT = insert(t.payment_outbox).values(
    booking_id=bindparam("booking_pk"),
    step=bindparam("step_name"),
    amount=bindparam("amount_p"),
    idempotency_key=bindparam("key"),
    status="pending",
    attempts=0,
    next_attempt_at=bindparam("now"),
    created_at=bindparam("now"),
)

# The housekeeping sweep's statements: the due condition is in the WHERE clause, on an index
# (sql_schema.HOUSEKEEPING_INDEX_DDL), so a sweep costs what is due rather than every row there is.
_BOOKINGS_STARTING_BY = _BOOKING_COLUMNS.where(
    _b.status == bindparam("in_status"), _b.starts_at <= bindparam("starts_by")
).order_by(_b.id)
_UNRESERVED_STARTING_BY = _BOOKINGS_STARTING_BY.where(_b.reservation == bindparam("reservation_state"))
_PENDING_PAYMENTS_OF = (
    select(t.payment_outbox)
    .where(_o.booking_id == bindparam("booking_pk"), _o.status == "pending")
    .order_by(_o.id)
)


# Once per registration, booking, payment step or ledger write (not per frame): prebuilt for the same
# reason as the hot-path statements, since a fleet-scale run makes tens of thousands of each.
_a = t.availability.c


def _insert_of(table: Any, *columns: str) -> Any:
    """An INSERT naming its columns, each bound to the parameter `row_<column>` (a bare `insert(table)`
    names every column when compiled on its own, as `DirectStatement` does; and a parameter named
    like a column would become a value of any insert that `Connection.execute` is given it with)."""
    return insert(table).values({name: bindparam(f"row_{name}") for name in columns})


_INSERT_BOOKING = _insert_of(
    t.bookings,
    "driver_id",
    "connector_id",
    "starts_at",
    "ends_at",
    "status",
    "max_energy_wh",
    "price_per_kwh",
    "hold_amount",
    "created_at",
    "fee",
    "reservation",
).returning(_b.id)
_RAISE_FENCE = (
    update(t.connectors)
    .where(_k.id == bindparam("connector_pk"), _k.fence_token < bindparam("token"))
    .values(fence_token=bindparam("token"))
)
_SET_CHARGER_STATUS = (
    update(t.chargers)
    .where(t.chargers.c.charge_point_id == bindparam("cp_id"))
    .values(status=bindparam("new_status"), last_seen_at=bindparam("seen_at"))
)
_SET_CHARGER_STATUS_AND_VERSION = _SET_CHARGER_STATUS.values(ocpp_version=bindparam("version"))
_ADD_HOST = _insert_of(t.hosts, "name").returning(t.hosts.c.id)
_ADD_DRIVER = _insert_of(t.drivers, "name", "id_tag").returning(t.drivers.c.id)
_ADD_CHARGER = _insert_of(
    t.chargers, "charge_point_id", "host_id", "title", "lat", "lon", "price_per_kwh", "status"
).returning(t.chargers.c.id)
_ADD_CONNECTOR = _insert_of(
    t.connectors, "charger_id", "connector_no", "type", "max_power_w", "status", "fence_token"
)
_ADD_RTREE_BOX = _insert_of(t.charger_rtree, "id", "min_lon", "max_lon", "min_lat", "max_lat")  # SQLite only
_AVAILABILITY_IN = select(t.availability).where(in_ids(_a.charger_id, "ids")).order_by(_a.id)
_NOTIFY_HOST = _insert_of(t.notifications, "host_id", "kind", "subject", "body", "created_at")
_SET_RESERVATION = (
    update(t.bookings).where(_b.id == bindparam("booking_pk")).values(reservation=bindparam("state"))
)
_SET_RESERVATION_IF = _SET_RESERVATION.where(_b.reservation == bindparam("expected_state"))
_UPDATE_PAYMENT = (
    update(t.payment_outbox)
    .where(_o.id == bindparam("item_pk"))
    .values(
        status=bindparam("new_status"),
        attempts=bindparam("tries"),
        next_attempt_at=bindparam("next_at"),
        last_error=bindparam("error_text"),
        done_at=bindparam("done"),
    )
)
_INSERT_ENTRY = insert(t.ledger_entries).values(
    id=bindparam("entry_key"),
    kind=bindparam("entry_kind"),
    booking_id=bindparam("booking_pk"),
    pending_id=bindparam("pending_key"),
    created_at=bindparam("at"),
)
_INSERT_POSTING = insert(t.ledger_postings).values(
    entry_id=bindparam("entry_key"),
    seq=bindparam("n"),
    account=bindparam("acct"),
    amount=bindparam("amount_p"),
)
_ENTRY_COLUMNS = (_le.id, _le.kind, _le.booking_id, _le.pending_id, _le.created_at)  # as `_journal` reads
_ENTRIES_OF_BOOKING = (
    select(*_ENTRY_COLUMNS).where(_le.booking_id == bindparam("booking_pk")).order_by(_le.created_at, _le.id)
)
_POSTINGS_OF_BOOKING = (
    select(_lp.entry_id, _lp.account, _lp.amount)
    .join(t.ledger_entries, _le.id == _lp.entry_id)
    .where(_le.booking_id == bindparam("booking_pk"))
    .order_by(_lp.entry_id, _lp.seq)
)

# The statements a charger's frames and the housekeeping sweep run, straight on the driver
# (`sql_direct`): built above, compiled once per dialect.
_CHARGER_BY_CP_D = DirectStatement(_CHARGER_BY_CP)
_CHARGER_BY_ID_D = DirectStatement(_CHARGER_BY_ID)
_TOUCH_CHARGER_D = DirectStatement(_TOUCH_CHARGER)
_SET_CONNECTORS_STATUS_D = DirectStatement(_SET_CONNECTORS_STATUS)
_SET_CONNECTOR_STATUS_D = DirectStatement(_SET_CONNECTOR_STATUS)
_DRIVER_BY_TAG_D = DirectStatement(_DRIVER_BY_TAG)
_BOOKING_BY_ID_D = DirectStatement(_BOOKING_BY_ID)
_CONNECTOR_OF_BOOKING_D = DirectStatement(_CONNECTOR_OF_BOOKING)
_BOOKING_FOR_START_D = DirectStatement(_BOOKING_FOR_START)
_SESSION_BY_ID_D = DirectStatement(_SESSION_BY_ID)
_OPEN_SESSION_D = DirectStatement(_OPEN_SESSION)
_ADVANCE_METER_D = DirectStatement(_ADVANCE_METER)
_SESSION_CHARGER_D = DirectStatement(_SESSION_CHARGER)
_MARK_IDLE_D = DirectStatement(_MARK_IDLE)
_MARK_IDLE_ONCE_D = DirectStatement(_MARK_IDLE_ONCE)
_SILENT_CHARGERS_D = DirectStatement(_SILENT_CHARGERS)
_DUE_PAYMENTS_D = DirectStatement(_DUE_PAYMENTS)
_STOP_SESSION_D = DirectStatement(_STOP_SESSION)
_UPDATE_BOOKING_D = DirectStatement(_UPDATE_BOOKING)
_SESSION_FOR_BOOKING_D = DirectStatement(_SESSION_FOR_BOOKING)
_SESSION_BY_START_KEY_D = DirectStatement(_SESSION_BY_START_KEY)
_INSERT_SESSION_D = DirectStatement(_INSERT_SESSION)
_DRIVER_BY_ID_D = DirectStatement(_DRIVER_BY_ID)
_PAYMENT_BY_KEY_D = DirectStatement(_PAYMENT_BY_KEY)
_ENQUEUE_PAYMENT_D = DirectStatement(_ENQUEUE_PAYMENT)
_UPDATE_PAYMENT_D = DirectStatement(_UPDATE_PAYMENT)
_INSERT_ENTRY_D = DirectStatement(_INSERT_ENTRY)
_INSERT_POSTING_D = DirectStatement(_INSERT_POSTING)
_ENTRIES_OF_BOOKING_D = DirectStatement(_ENTRIES_OF_BOOKING)
_POSTINGS_OF_BOOKING_D = DirectStatement(_POSTINGS_OF_BOOKING)
_CONNECTORS_OF_D = DirectStatement(_CONNECTORS.where(_k.charger_id == bindparam("charger_pk")))
_CONNECTORS_OF_MANY_D = DirectStatement(_CONNECTORS_OF_MANY)
_STATUS_AND_CONNECTOR_D = DirectStatement(_STATUS_AND_CONNECTOR)
_STATUS_OF_CONNECTORS_D = DirectStatement(_STATUS_OF_CONNECTORS)
_AVAILABILITY_IN_D = DirectStatement(_AVAILABILITY_IN)
_BOOKINGS_STARTING_BY_D = DirectStatement(_BOOKINGS_STARTING_BY)
_UNRESERVED_STARTING_BY_D = DirectStatement(_UNRESERVED_STARTING_BY)
_PENDING_PAYMENTS_OF_D = DirectStatement(_PENDING_PAYMENTS_OF)
_INSERT_BOOKING_D = DirectStatement(_INSERT_BOOKING)
_SET_CHARGER_STATUS_D = DirectStatement(_SET_CHARGER_STATUS)
_SET_CHARGER_STATUS_AND_VERSION_D = DirectStatement(_SET_CHARGER_STATUS_AND_VERSION)
_NOTIFY_HOST_D = DirectStatement(_NOTIFY_HOST)
_SET_RESERVATION_D = DirectStatement(_SET_RESERVATION)
_SET_RESERVATION_IF_D = DirectStatement(_SET_RESERVATION_IF)
_RAISE_FENCE_D = DirectStatement(_RAISE_FENCE)
_ADD_HOST_D = DirectStatement(_ADD_HOST)
_ADD_DRIVER_D = DirectStatement(_ADD_DRIVER)
_ADD_CHARGER_D = DirectStatement(_ADD_CHARGER)
_ADD_CONNECTOR_D = DirectStatement(_ADD_CONNECTOR)
# Statements for one dialect only (tests/integration/test_sql_direct.py checks them on it alone).
SQLITE_ONLY = {"add_rtree_box": DirectStatement(_ADD_RTREE_BOX)}
# Whole-table reads (a run's report and its invariants read every row once).
_BOOKINGS_D = DirectStatement(_BOOKINGS)
_ALL_CHARGERS_D = DirectStatement(select(*_CHARGER_COLUMNS).order_by(t.chargers.c.id))
_SESSIONS_D = DirectStatement(select(t.sessions).order_by(_s.id))
_ENTRIES_D = DirectStatement(select(*_ENTRY_COLUMNS).order_by(_le.created_at, _le.id))
_POSTINGS_D = DirectStatement(select(_lp.entry_id, _lp.account, _lp.amount).order_by(_lp.entry_id, _lp.seq))


def _live_overlap(connector: Any, since: Any, until: Any, live: Iterable[BookingStatus]) -> list[Any]:
    """Conditions for a booking in one of the `live` states on `connector` overlapping [since, until):
    the booking guard's and the map search's booking window's. Columns come first in each comparison,
    so an untyped parameter takes the column's type."""
    return [
        _b.connector_id == connector,
        _one_of(_b.status, [s.value for s in live]),
        _b.starts_at < until,
        _b.ends_at > since,
    ]


@functools.lru_cache(maxsize=4)
def _clash_statement(live: frozenset[BookingStatus]) -> DirectStatement:
    """The first live booking on a connector overlapping a period. Keyed by the live states, so a
    test that mutates `LIVE_STATES` (to show a scenario turning red) gets a statement built from them."""
    overlap = _live_overlap(bindparam("connector_pk"), bindparam("since"), bindparam("until"), live)
    return DirectStatement(select(_b.id).where(*overlap).limit(1))


_CLASH_D = _clash_statement(LIVE_STATES)


# Fractions of a radius search's radius tried first on SQLite (see SqlTransaction.search): at most a
# third more work when none holds enough matches, a small fraction of it when one does.
_INNER_RINGS = (0.125, 0.25, 0.5)


class _SearchShape(NamedTuple):
    """Which filters a map search uses: each shape gets one statement, built once, with bound values."""

    dialect: str
    centre: bool
    max_price: bool
    online_only: bool
    connector_type: bool
    min_power: bool
    window: bool
    limited: bool


@functools.lru_cache(maxsize=256)
def _search_statement(shape: _SearchShape) -> DirectStatement:
    c, k, b = t.chargers.c, t.connectors.c, t.bookings.c
    west, east = bindparam("west", type_=Float), bindparam("east", type_=Float)
    south, north = bindparam("south", type_=Float), bindparam("north", type_=Float)
    conds: list[Any] = [c.lon >= west, c.lon <= east, c.lat >= south, c.lat <= north]
    distance: Any = None
    knn: Any = None
    lat, lon = bindparam("centre_lat", type_=Float), bindparam("centre_lon", type_=Float)
    radius = bindparam("radius", type_=Float)
    if shape.dialect == "postgresql":
        envelope = func.ST_MakeEnvelope(west, south, east, north, 4326)
        conds.append(literal_column("chargers.geom").op("&&")(envelope))
        if shape.centre:
            location = literal_column("chargers.location", Geography(srid=4326))
            point = cast(func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326), Geography(srid=4326))
            # Sphere, not spheroid, so both backends measure distance the same way.
            conds.append(func.ST_DWithin(location, point, radius, False))
            distance = func.ST_Distance(location, point, False)
            knn = location.op("<->")(point)
    else:
        rt = t.charger_rtree.c
        conds.append(
            c.id.in_(
                select(rt.id).where(
                    rt.min_lon <= east, rt.max_lon >= west, rt.min_lat <= north, rt.max_lat >= south
                )
            )
        )
        if shape.centre:
            distance = distance_expr(c.lat, c.lon, lat, lon)
            conds.append(distance <= radius)
            knn = distance
    if shape.max_price:
        conds.append(c.price_per_kwh <= bindparam("max_price"))
    if shape.online_only:
        status: Any = c.status
        if shape.dialect == "sqlite":
            # `status || ''` keeps SQLite's planner off ix_chargers_status_seen (the watchdog's
            # index): without statistics it would scan every online charger instead of the R*Tree
            # box, which made a search at 10,000 chargers cost the whole fleet.
            status = c.status.concat(literal_column("''"))
        conds.append(status == ChargerStatus.ONLINE.value)
    connector_conds: list[Any] = [k.charger_id == c.id]
    if shape.connector_type:
        connector_conds.append(k.type == bindparam("connector_type"))
    if shape.min_power:
        connector_conds.append(k.max_power_w >= bindparam("min_power"))
    if shape.online_only:
        out_of_use = [ConnectorStatus.FAULTED.value, ConnectorStatus.UNAVAILABLE.value]
        connector_conds.append(~_one_of(k.status, out_of_use))
    if shape.window:
        window = (
            bindparam("window_from", type_=t.UTCDateTime()),
            bindparam("window_until", type_=t.UTCDateTime()),
        )
        clash = select(b.id).where(*_live_overlap(k.id, *window, LIVE_STATES))
        connector_conds.append(~clash.exists())
    conds.append(select(k.id).where(*connector_conds).exists())

    columns: list[Any] = [*_CHARGER_COLUMNS] if distance is None else [*_CHARGER_COLUMNS, distance]
    stmt = select(*columns).where(*conds)
    stmt = stmt.order_by(c.id) if distance is None else stmt.order_by(knn, c.id)
    if shape.limited:
        stmt = stmt.limit(bindparam("most", type_=Integer))
    return DirectStatement(stmt)


class SqlTransaction:
    """Implements the `Transaction` port over one SQLAlchemy connection in one database transaction."""

    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    # ---- parties -------------------------------------------------------------------------------
    def add_host(self, name: str) -> int:
        return self._inserted(_ADD_HOST_D, {"row_name": name})

    def add_driver(self, name: str, id_tag: str) -> int:
        return self._inserted(_ADD_DRIVER_D, {"row_name": name, "row_id_tag": id_tag})

    def _inserted(self, stmt: DirectStatement, row: Mapping[str, Any]) -> int:
        """Run an INSERT ... RETURNING id; the new row's id."""
        found = stmt.first(self.conn, row)
        assert found is not None
        return int(found[0])

    def driver(self, driver_id: int) -> DriverRecord:
        r = _DRIVER_BY_ID_D.first_mapping(self.conn, {"driver_pk": driver_id})
        if r is None:
            raise NotFound(f"no driver {driver_id}")
        return DriverRecord(r["id"], r["name"], r["id_tag"])

    def driver_by_tag(self, id_tag: str) -> DriverRecord | None:
        r = _DRIVER_BY_TAG_D.first_mapping(self.conn, {"tag": id_tag})
        return None if r is None else DriverRecord(r["id"], r["name"], r["id_tag"])

    # ---- chargers ------------------------------------------------------------------------------
    def add_charger(self, spec: ChargerSpec) -> int:
        row = {
            "row_charge_point_id": spec.charge_point_id,
            "row_host_id": spec.host_id,
            "row_title": spec.title,
            "row_lat": spec.location.lat,
            "row_lon": spec.location.lon,
            "row_price_per_kwh": spec.tariff.price_per_kwh,
            "row_status": ChargerStatus.REGISTERED.value,
        }
        charger_id = self._inserted(_ADD_CHARGER_D, row)
        for c in spec.connectors:
            connector = {
                "row_charger_id": charger_id,
                "row_connector_no": c.connector_no,
                "row_type": c.type.value,
                "row_max_power_w": c.max_power_w,
                "row_status": ConnectorStatus.UNAVAILABLE.value,
                "row_fence_token": 0,
            }
            _ADD_CONNECTOR_D.write(self.conn, connector)
        if self.dialect == "sqlite":
            lon, lat = spec.location.lon, spec.location.lat
            box = {"row_id": charger_id, "row_min_lon": lon, "row_max_lon": lon}
            SQLITE_ONLY["add_rtree_box"].write(self.conn, {**box, "row_min_lat": lat, "row_max_lat": lat})
        return charger_id

    def _views(self, where: Any) -> list[ChargerView]:
        q = select(*_CHARGER_COLUMNS).where(where).order_by(t.chargers.c.id)
        return self._hydrate(list(self.conn.execute(q)), with_distance=False)

    def _hydrate(self, rows: Sequence[Any], *, with_distance: bool) -> list[ChargerView]:
        """Views from charger rows (`_CHARGER_COLUMNS`, then the distance if any) and one query for
        their connectors. Rows are read by position: this is the map's hot path."""
        if not rows:
            return []
        ids = [r[0] for r in rows]
        if len(ids) == 1:  # one charger (a frame's lookup)
            found = _CONNECTORS_OF_D.rows(self.conn, {"charger_pk": ids[0]})
        else:
            found = _CONNECTORS_OF_MANY_D.rows(self.conn, {"ids": ids})
        by_charger: dict[int, list[ConnectorView]] = defaultdict(list)
        for charger_id, cid, no, type_, power, status in found:
            by_charger[charger_id].append(
                ConnectorView(cid, no, _CONNECTOR_TYPES[type_], power, _CONNECTOR_STATUSES[status])
            )
        return [
            ChargerView(
                charger_id=r[0],
                charge_point_id=r[1],
                host_id=r[2],
                title=r[3],
                location=Point(r[4], r[5]),
                price_per_kwh=r[6],
                status=_CHARGER_STATUSES[r[7]],
                ocpp_version=r[8],
                last_seen_at=r[9],
                connectors=tuple(by_charger[r[0]]),
                distance_m=float(r[10]) if with_distance else None,
            )
            for r in rows
        ]

    def charger(self, charge_point_id: str) -> ChargerView:
        rows = _CHARGER_BY_CP_D.rows(self.conn, {"cp_id": charge_point_id})
        views = self._hydrate(rows, with_distance=False)
        if not views:
            raise NotFound(f"no charger {charge_point_id!r}")
        return views[0]

    def status_and_connector(
        self, charge_point_id: str, connector_no: int
    ) -> tuple[ChargerStatus, int | None]:
        found = _STATUS_AND_CONNECTOR_D.first(self.conn, {"cp_id": charge_point_id, "no": connector_no})
        if found is None:
            raise NotFound(f"no charger {charge_point_id!r}")
        return _CHARGER_STATUSES[found[0]], found[1]

    def charger_by_id(self, charger_id: int) -> ChargerView:
        rows = _CHARGER_BY_ID_D.rows(self.conn, {"charger_pk": charger_id})
        views = self._hydrate(rows, with_distance=False)
        if not views:
            raise NotFound(f"no charger {charger_id}")
        return views[0]

    def chargers(self) -> Sequence[ChargerView]:
        return self._hydrate(_ALL_CHARGERS_D.rows(self.conn, {}), with_distance=False)

    def search(self, query: SearchQuery) -> Sequence[ChargerView]:
        windowed = query.available_from is not None
        if self.dialect == "sqlite" and query.centre is not None and query.radius_m is not None and windowed:
            # SQLite has no nearest-first index: it measures every charger in the box, then sorts, and
            # a search with a booking window cannot LIMIT in SQL (calendars are checked here). Try
            # smaller circles first: when one already holds `limit` matches, they are exactly the first
            # `limit` of the whole radius (everything beyond it is farther), at a fraction of the work.
            # (Only windowed searches: a plain one stops at its LIMIT, and is what `bench geo` times
            # against hand-written SQL doing one pass.)
            for fraction in _INNER_RINGS:
                radius = query.radius_m * fraction
                inner = dataclasses.replace(query, radius_m=radius)
                # The box is padded: a ring's matches must all be found for the argument to hold.
                found = self._search_once(inner, BBox.around(query.centre, radius * 1.01 + 1.0))
                if len(found) >= query.limit:
                    return found
        return self._search_once(query, query.area)

    def _search_once(self, query: SearchQuery, area: BBox) -> list[ChargerView]:
        window = query.available_from, query.available_until
        timed = window[0] is not None and window[1] is not None
        calendar = window[0] is not None
        shape = _SearchShape(
            self.dialect,
            query.centre is not None,
            query.max_price_per_kwh is not None,
            query.online_only,
            query.connector_type is not None,
            query.min_power_w is not None,
            timed,
            not calendar,
        )
        params: dict[str, Any] = {
            "west": area.west,
            "east": area.east,
            "south": area.south,
            "north": area.north,
            "max_price": query.max_price_per_kwh,
            "connector_type": None if query.connector_type is None else query.connector_type.value,
            "min_power": query.min_power_w,
            "window_from": window[0],
            "window_until": window[1],
            "most": query.limit,
        }
        if query.centre is not None:
            params.update(centre_lat=query.centre.lat, centre_lon=query.centre.lon, radius=query.radius_m)
        stmt = _search_statement(shape)
        distance = query.centre is not None
        picked: list[Any] = []
        for candidates in stmt.batches(self.conn, params, max(query.limit, 100)):
            if calendar:
                assert window[0] is not None and window[1] is not None
                cal = self.availability([r[0] for r in candidates])
                candidates = [r for r in candidates if covers(cal.get(r[0], []), window[0], window[1])]
            picked.extend(candidates[: query.limit - len(picked)])
            if len(picked) >= query.limit:
                break
        return self._hydrate(picked, with_distance=distance)

    def set_availability(self, charger_id: int, windows: Sequence[WeeklyWindow]) -> None:
        a = t.availability.c
        self.conn.execute(t.availability.delete().where(a.charger_id == charger_id))
        if windows:
            self.conn.execute(
                insert(t.availability),
                [
                    {
                        "charger_id": charger_id,
                        "weekday": w.weekday,
                        "start_minute": w.start_minute,
                        "end_minute": w.end_minute,
                    }
                    for w in windows
                ],
            )

    def availability(self, charger_ids: Sequence[int]) -> dict[int, list[WeeklyWindow]]:
        if not charger_ids:
            return {}
        out: dict[int, list[WeeklyWindow]] = defaultdict(list)
        for r in _AVAILABILITY_IN_D.mappings(self.conn, {"ids": charger_ids}):
            out[r["charger_id"]].append(WeeklyWindow(r["weekday"], r["start_minute"], r["end_minute"]))
        return dict(out)

    def set_charger_status(
        self, charge_point_id: str, status: ChargerStatus, at: datetime, ocpp_version: str | None = None
    ) -> None:
        params = {
            "cp_id": charge_point_id,
            "new_status": status.value,
            "seen_at": at,
            "version": ocpp_version,
        }
        q = _SET_CHARGER_STATUS_D if ocpp_version is None else _SET_CHARGER_STATUS_AND_VERSION_D
        if q.write(self.conn, params) == 0:
            raise NotFound(f"no charger {charge_point_id!r}")

    def touch_charger(self, charge_point_id: str, at: datetime) -> None:
        if not self._touched(charge_point_id, at):
            raise NotFound(f"no charger {charge_point_id!r}")

    def _touched(self, charge_point_id: str, at: datetime) -> bool:
        return _TOUCH_CHARGER_D.write(self.conn, {"cp_id": charge_point_id, "seen_at": at}) > 0

    def touch_chargers(self, stamps: Mapping[str, datetime]) -> list[str]:
        rows = [{"cp_id": cp_id, "seen_at": at} for cp_id, at in stamps.items()]
        if _TOUCH_CHARGER_D.write_many(self.conn, rows) == len(rows):
            return []
        # Some id matched no row (or the driver cannot count): find which, one by one. Rewriting a
        # stamp just written changes nothing.
        return [cp_id for cp_id, at in stamps.items() if not self._touched(cp_id, at)]

    def _update_charger(self, charge_point_id: str, values: dict[str, Any]) -> None:
        res = self.conn.execute(
            update(t.chargers).where(t.chargers.c.charge_point_id == charge_point_id).values(**values)
        )
        if res.rowcount == 0:
            raise NotFound(f"no charger {charge_point_id!r}")

    def set_charger_password(self, charge_point_id: str, password_hash: str | None) -> None:
        self._update_charger(charge_point_id, {"password_hash": password_hash})

    def charger_password(self, charge_point_id: str) -> str | None:
        r = self.conn.execute(
            select(t.chargers.c.password_hash).where(t.chargers.c.charge_point_id == charge_point_id)
        ).first()
        if r is None:
            raise NotFound(f"no charger {charge_point_id!r}")
        return None if r[0] is None else str(r[0])

    def remove_charger(self, charge_point_id: str) -> None:
        view = self.charger(charge_point_id)
        ids = [c.connector_id for c in view.connectors]
        if self.conn.execute(
            select(t.bookings.c.id).where(t.bookings.c.connector_id.in_(ids)).limit(1)
        ).first():
            raise InvalidRequest(f"charger {charge_point_id!r} has bookings; it cannot be removed")
        self.conn.execute(t.availability.delete().where(t.availability.c.charger_id == view.charger_id))
        self.conn.execute(t.charger_notes.delete().where(t.charger_notes.c.charger_id == view.charger_id))
        self.conn.execute(t.connectors.delete().where(t.connectors.c.charger_id == view.charger_id))
        if self.dialect == "sqlite":
            self.conn.execute(t.charger_rtree.delete().where(t.charger_rtree.c.id == view.charger_id))
        self.conn.execute(t.chargers.delete().where(t.chargers.c.id == view.charger_id))

    def silent_chargers(self, seen_before: datetime) -> Sequence[ChargerView]:
        rows = _SILENT_CHARGERS_D.rows(self.conn, {"before": seen_before})
        return self._hydrate(rows, with_distance=False)

    def notify_host(self, host_id: int, kind: str, subject: str, body: str, at: datetime) -> None:
        row = {
            "row_host_id": host_id,
            "row_kind": kind,
            "row_subject": subject,
            "row_body": body,
            "row_created_at": at,
        }
        _NOTIFY_HOST_D.write(self.conn, row)

    def notifications(self, host_id: int | None = None) -> Sequence[dict[str, object]]:
        q = select(t.notifications).order_by(t.notifications.c.id)
        if host_id is not None:
            q = q.where(t.notifications.c.host_id == host_id)
        return [dict(r) for r in self.conn.execute(q).mappings()]

    def record_security_event(self, charge_point_id: str, kind: str, detail: str, at: datetime) -> None:
        self.conn.execute(
            insert(t.security_events).values(
                charge_point_id=charge_point_id[:64], kind=kind, detail=detail[:500], created_at=at
            )
        )

    def security_events(self, charge_point_id: str | None = None) -> Sequence[SecurityEvent]:
        e = t.security_events.c
        q = select(e.id, e.charge_point_id, e.kind, e.detail, e.created_at).order_by(e.id)
        if charge_point_id is not None:
            q = q.where(e.charge_point_id == charge_point_id)
        return [SecurityEvent(*r) for r in self.conn.execute(q)]

    def set_connector_status(self, charge_point_id: str, connector_no: int, status: ConnectorStatus) -> None:
        params = {"cp_id": charge_point_id, "new_status": status.value, "no": connector_no}
        # OCPP connectorId 0 means the whole charger
        (_SET_CONNECTORS_STATUS_D if connector_no == 0 else _SET_CONNECTOR_STATUS_D).write(self.conn, params)

    def connector_statuses(self, connector_ids: Sequence[int]) -> dict[int, ConnectorStatus]:
        if not connector_ids:
            return {}
        rows = _STATUS_OF_CONNECTORS_D.rows(self.conn, {"ids": connector_ids})
        return {r[0]: _CONNECTOR_STATUSES[r[1]] for r in rows}

    # ---- bookings ------------------------------------------------------------------------------
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
        self._lock_connector(connector_id)
        if fencing_token is not None:
            # Also locks the connector row on PostgreSQL, queueing writers for this connector.
            params = {"connector_pk": connector_id, "token": fencing_token}
            if _RAISE_FENCE_D.write(self.conn, params) == 0:
                raise StaleFencingToken(
                    f"fencing token {fencing_token} is stale for connector {connector_id}"
                )
        period = {"connector_pk": connector_id, "since": starts_at, "until": ends_at}
        if _clash_statement(LIVE_STATES).first(self.conn, period) is not None:
            raise BookingConflict(f"connector {connector_id} is already booked for an overlapping period")
        row = {
            "row_driver_id": driver_id,
            "row_connector_id": connector_id,
            "row_starts_at": starts_at,
            "row_ends_at": ends_at,
            "row_status": BookingStatus.REQUESTED.value,
            "row_max_energy_wh": max_energy_wh,
            "row_price_per_kwh": price_per_kwh,
            "row_hold_amount": hold_amount,
            "row_created_at": created_at,
            "row_fee": 0,
            "row_reservation": "none",
        }
        if self.dialect == "sqlite":  # no constraint to trip: the check above is the whole guard
            inserted = _INSERT_BOOKING_D.first(self.conn, row)
            assert inserted is not None
            return int(inserted[0])
        try:
            # A savepoint, so an exclusion violation (a racing booking got in first) leaves the
            # transaction usable; through SQLAlchemy, which names the driver's error.
            with self.conn.begin_nested():
                return int(self.conn.execute(_INSERT_BOOKING, row).scalar_one())
        except IntegrityError as exc:
            if getattr(exc.orig, "sqlstate", None) == PG_EXCLUSION_VIOLATION:
                raise BookingConflict(
                    f"connector {connector_id} is already booked for an overlapping period"
                ) from exc
            raise

    def _lock_connector(self, connector_id: int) -> None:
        """Queue every booking write on one connector behind a row lock (PostgreSQL). Without it, an
        insert and a status change can each wait on the other's exclusion-constraint check: deadlock.
        SQLite needs nothing: its write transactions are already serialized (BEGIN IMMEDIATE)."""
        if self.dialect == "postgresql":
            self.conn.execute(
                select(t.connectors.c.id).where(t.connectors.c.id == connector_id).with_for_update()
            )

    def booking(self, booking_id: int) -> BookingRecord:
        r = _BOOKING_BY_ID_D.first_mapping(self.conn, {"booking_pk": booking_id})
        if r is None:
            raise NotFound(f"no booking {booking_id}")
        return _booking(r)

    def bookings(self, status: BookingStatus | None = None) -> Sequence[BookingRecord]:
        if status is None:
            return [_booking(r) for r in _BOOKINGS_D.mappings(self.conn, {})]
        rows = self.conn.execute(_BOOKINGS_IN_STATUS, {"in_status": status.value}).mappings()
        return [_booking(r) for r in rows]

    def bookings_starting_by(
        self, status: BookingStatus, starts_by: datetime, *, reservation: str | None = None
    ) -> Sequence[BookingRecord]:
        params = {"in_status": status.value, "starts_by": starts_by, "reservation_state": reservation}
        q = _BOOKINGS_STARTING_BY_D if reservation is None else _UNRESERVED_STARTING_BY_D
        return [_booking(r) for r in q.mappings(self.conn, params)]

    def update_booking(
        self,
        booking_id: int,
        status: BookingStatus,
        *,
        ends_at: datetime | None = None,
        payment_ref: str | None = None,
        fee: int | None = None,
        cancelled_by: str | None = None,
    ) -> None:
        found = _CONNECTOR_OF_BOOKING_D.first(self.conn, {"booking_pk": booking_id})
        connector_id = None if found is None else found[0]
        if connector_id is None:
            raise NotFound(f"no booking {booking_id}")
        self._lock_connector(connector_id)
        params = {
            "booking_pk": booking_id,
            "new_status": status.value,
            "new_ends_at": ends_at,
            "new_ref": payment_ref,
            "new_fee": fee,
            "new_by": cancelled_by,
        }
        if _UPDATE_BOOKING_D.write(self.conn, params) == 0:
            raise NotFound(f"no booking {booking_id}")

    def set_reservation(self, booking_id: int, state: str, *, expected: str | None = None) -> bool:
        if expected is None:
            return bool(_SET_RESERVATION_D.write(self.conn, {"booking_pk": booking_id, "state": state}))
        params = {"booking_pk": booking_id, "state": state, "expected_state": expected}
        return bool(_SET_RESERVATION_IF_D.write(self.conn, params))

    def booking_for_start(self, connector_id: int, driver_id: int, at: datetime) -> BookingRecord | None:
        params = {"connector_pk": connector_id, "driver_pk": driver_id, "at": at}
        r = _BOOKING_FOR_START_D.first_mapping(self.conn, params)
        return None if r is None else _booking(r)

    # ---- sessions ------------------------------------------------------------------------------
    def session_by_start_key(
        self, connector_id: int, id_tag: str, meter_start: int, started_at: datetime
    ) -> SessionRecord | None:
        params = {
            "connector_pk": connector_id,
            "tag": id_tag,
            "start_wh": meter_start,
            "start_at": started_at,
        }
        r = _SESSION_BY_START_KEY_D.first_mapping(self.conn, params)
        return None if r is None else _session(r)

    def insert_session(
        self, *, booking_id: int, connector_id: int, id_tag: str, started_at: datetime, meter_start_wh: int
    ) -> int:
        params = {
            "booking_pk": booking_id,
            "connector_pk": connector_id,
            "tag": id_tag,
            "start_at": started_at,
            "start_wh": meter_start_wh,
        }
        row = _INSERT_SESSION_D.first(self.conn, params)
        assert row is not None  # INSERT ... RETURNING always gives the row
        return int(row[0])

    def session(self, session_id: int) -> SessionRecord | None:
        r = _SESSION_BY_ID_D.first_mapping(self.conn, {"session_pk": session_id})
        return None if r is None else _session(r)

    def session_for_booking(self, booking_id: int) -> SessionRecord | None:
        r = _SESSION_FOR_BOOKING_D.first_mapping(self.conn, {"booking_pk": booking_id})
        return None if r is None else _session(r)

    def open_session(self, connector_id: int) -> SessionRecord | None:
        r = _OPEN_SESSION_D.first_mapping(self.conn, {"connector_pk": connector_id})
        return None if r is None else _session(r)

    def sessions(self) -> Sequence[SessionRecord]:
        return [_session(r) for r in _SESSIONS_D.mappings(self.conn, {})]

    def link_charger_transaction(
        self, session_id: int, charger_id: int, transaction_id: str, *, meter_start_pending: bool = False
    ) -> None:
        self.conn.execute(
            insert(t.charger_transactions).values(
                session_id=session_id,
                charger_id=charger_id,
                transaction_id=transaction_id,
                meter_start_pending=meter_start_pending,
            )
        )

    def settle_meter_start(self, session_id: int, meter_wh: int) -> bool:
        ct, s = t.charger_transactions.c, t.sessions.c
        pending = self.conn.execute(
            update(t.charger_transactions)
            .where(ct.session_id == session_id, ct.meter_start_pending.is_(True))
            .values(meter_start_pending=False)
        ).rowcount
        if pending:
            self.conn.execute(
                update(t.sessions)
                .where(s.id == session_id)
                .values(meter_start_wh=meter_wh, meter_last_wh=meter_wh)
            )
        return bool(pending)

    def session_by_charger_transaction(self, charger_id: int, transaction_id: str) -> SessionRecord | None:
        ct = t.charger_transactions.c
        q = (
            select(t.sessions)
            .join(t.charger_transactions, ct.session_id == t.sessions.c.id)
            .where(ct.charger_id == charger_id, ct.transaction_id == transaction_id)
        )
        r = self.conn.execute(q).mappings().first()
        return None if r is None else _session(r)

    def charger_transaction_id(self, session_id: int) -> str | None:
        ct = t.charger_transactions.c
        return self.conn.execute(select(ct.transaction_id).where(ct.session_id == session_id)).scalar()

    def advance_charger_seq(self, session_id: int, seq_no: int) -> bool:
        ct = t.charger_transactions.c
        # Compare-and-set: only a seqNo beyond the highest applied counts as new.
        q = (
            update(t.charger_transactions)
            .where(ct.session_id == session_id, (ct.seq_no.is_(None)) | (ct.seq_no < seq_no))
            .values(seq_no=seq_no)
        )
        return bool(self.conn.execute(q).rowcount)

    def advance_meter(self, session_id: int, meter_wh: int, charge_point_id: str) -> MeterAdvance | None:
        params = {"session_pk": session_id, "reading": meter_wh, "cp_id": charge_point_id}
        row = _ADVANCE_METER_D.first(self.conn, params)
        return None if row is None else MeterAdvance(row[0], row[1], row[2], row[3])

    def session_charger(self, session_id: int) -> str | None:
        row = _SESSION_CHARGER_D.first(self.conn, {"session_pk": session_id})
        return None if row is None else str(row[0])

    def mark_idle(self, session_id: int, since: datetime | None) -> None:
        # Idle from the first report, not the latest; None (charging again) always clears it.
        q = _MARK_IDLE_D if since is None else _MARK_IDLE_ONCE_D
        q.write(self.conn, {"session_pk": session_id, "since": since})

    def stop_session(
        self,
        session_id: int,
        *,
        stopped_at: datetime,
        meter_stop_wh: int,
        billed_wh: int,
        cost: int,
        idle_fee: int = 0,
    ) -> None:
        params = {
            "session_pk": session_id,
            "stop_at": stopped_at,
            "stop_wh": meter_stop_wh,
            "billed": billed_wh,
            "cost_p": cost,
            "idle_fee_p": idle_fee,
        }
        _STOP_SESSION_D.write(self.conn, params)

    # ---- ledger --------------------------------------------------------------------------------
    def add_entries(self, entries: Sequence[JournalEntry]) -> None:
        for e in entries:
            _INSERT_ENTRY_D.write(
                self.conn,
                {
                    "entry_key": e.entry_id,
                    "entry_kind": e.kind.value,
                    "booking_pk": e.booking_id,
                    "pending_key": e.pending_id,
                    "at": e.created_at,
                },
            )
            for i, p in enumerate(e.postings):
                params = {"entry_key": e.entry_id, "n": i, "acct": p.account, "amount_p": p.amount}
                _INSERT_POSTING_D.write(self.conn, params)

    def entries(self, booking_id: int | None = None, account: str | None = None) -> Sequence[JournalEntry]:
        if booking_id is not None and account is None:  # one booking's (settlement, every step)
            params = {"booking_pk": booking_id}
            return _journal(
                _ENTRIES_OF_BOOKING_D.rows(self.conn, params), _POSTINGS_OF_BOOKING_D.rows(self.conn, params)
            )
        if booking_id is None and account is None:  # the whole journal (reports, invariants)
            return _journal(_ENTRIES_D.rows(self.conn, {}), _POSTINGS_D.rows(self.conn, {}))
        e, p = t.ledger_entries.c, t.ledger_postings.c
        q = select(*_ENTRY_COLUMNS)
        pq = select(p.entry_id, p.account, p.amount).join(t.ledger_entries, e.id == p.entry_id)
        if booking_id is not None:
            q = q.where(e.booking_id == booking_id)
            pq = pq.where(e.booking_id == booking_id)
        if account is not None:  # entries with a posting on this account (all their postings)
            touching = e.id.in_(select(p.entry_id).where(p.account == account))
            q = q.where(touching)
            pq = pq.where(touching)
        return _journal(
            self.conn.execute(q.order_by(e.created_at, e.id)),
            self.conn.execute(pq.order_by(p.entry_id, p.seq)),
        )

    def posting_sums(self) -> dict[str, int]:
        p = t.ledger_postings.c
        rows = self.conn.execute(select(p.entry_id, func.sum(p.amount)).group_by(p.entry_id))
        return {r[0]: int(r[1]) for r in rows}

    # ---- payments outbox -----------------------------------------------------------------------
    def enqueue_payment(self, booking_id: int, step: str, amount: int, key: str, now: datetime) -> bool:
        if self.payment(key) is not None:
            return False
        params = {"booking_pk": booking_id, "step_name": step, "amount_p": amount, "key": key, "now": now}
        _ENQUEUE_PAYMENT_D.write(self.conn, params)
        return True

    def payment(self, key: str) -> OutboxItem | None:
        r = _PAYMENT_BY_KEY_D.first_mapping(self.conn, {"key": key})
        return None if r is None else _outbox(r)

    def due_payments(self, now: datetime, limit: int) -> Sequence[OutboxItem]:
        return [_outbox(r) for r in _DUE_PAYMENTS_D.mappings(self.conn, {"now": now, "most": limit})]

    def payments(self, status: str | None = None) -> Sequence[OutboxItem]:
        o = t.payment_outbox.c
        q = select(t.payment_outbox).order_by(o.id)
        if status is not None:
            q = q.where(o.status == status)
        return [_outbox(r) for r in self.conn.execute(q).mappings()]

    def pending_payments_of(self, booking_id: int) -> Sequence[OutboxItem]:
        return [_outbox(r) for r in _PENDING_PAYMENTS_OF_D.mappings(self.conn, {"booking_pk": booking_id})]

    def update_payment(
        self,
        item_id: int,
        *,
        status: str,
        attempts: int,
        next_attempt_at: datetime,
        last_error: str | None,
        done_at: datetime | None = None,
    ) -> None:
        params = {
            "item_pk": item_id,
            "new_status": status,
            "tries": attempts,
            "next_at": next_attempt_at,
            "error_text": None if last_error is None else last_error[:500],
            "done": done_at,
        }
        _UPDATE_PAYMENT_D.write(self.conn, params)

    # ---- accounts, hosts' KYC and what hosts edit ---------------------------------------------------
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
        if self.account_by_email(email) is not None:
            raise InvalidRequest("an account with this email exists")
        try:
            with self.conn.begin_nested():
                stmt = insert(t.accounts).values(
                    email=email,
                    password_hash=password_hash,
                    role=role,
                    driver_id=driver_id,
                    host_id=host_id,
                    created_at=created_at,
                )
                return int(self.conn.execute(stmt.returning(t.accounts.c.id)).scalar_one())
        except IntegrityError as exc:  # a concurrent sign-up with the same email won
            raise InvalidRequest("an account with this email exists") from exc

    def _account(self, where: Any) -> AccountRecord | None:
        r = self.conn.execute(select(t.accounts).where(where)).mappings().first()
        if r is None:
            return None
        return AccountRecord(
            r["id"], r["email"], r["password_hash"], r["role"], r["driver_id"], r["host_id"], r["created_at"]
        )

    def account_by_email(self, email: str) -> AccountRecord | None:
        return self._account(t.accounts.c.email == email)

    def account(self, account_id: int) -> AccountRecord:
        found = self._account(t.accounts.c.id == account_id)
        if found is None:
            raise NotFound(f"no account {account_id}")
        return found

    def host(self, host_id: int) -> HostRecord:
        h, k = t.hosts.c, t.host_kyc.c
        r = self.conn.execute(
            select(h.id, h.name, k.status)
            .select_from(t.hosts.outerjoin(t.host_kyc, k.host_id == h.id))
            .where(h.id == host_id)
        ).first()
        if r is None:
            raise NotFound(f"no host {host_id}")
        return HostRecord(r[0], r[1], r[2] or "pending")

    def set_host_kyc(self, host_id: int, status: str, at: datetime) -> None:
        self.host(host_id)
        k = t.host_kyc.c
        changed = self.conn.execute(
            update(t.host_kyc).where(k.host_id == host_id).values(status=status, updated_at=at)
        ).rowcount
        if not changed:
            self.conn.execute(insert(t.host_kyc).values(host_id=host_id, status=status, updated_at=at))

    def verified_hosts(self) -> set[int]:
        k = t.host_kyc.c
        return {int(r[0]) for r in self.conn.execute(select(k.host_id).where(k.status == "verified"))}

    def chargers_of_host(self, host_id: int) -> Sequence[ChargerView]:
        return self._views(t.chargers.c.host_id == host_id)

    def update_charger(
        self, charger_id: int, *, title: str | None = None, price_per_kwh: int | None = None
    ) -> None:
        values: dict[str, Any] = {}
        if title is not None:
            values["title"] = title
        if price_per_kwh is not None:
            values["price_per_kwh"] = price_per_kwh
        if values:
            res = self.conn.execute(update(t.chargers).where(t.chargers.c.id == charger_id).values(**values))
            if res.rowcount == 0:
                raise NotFound(f"no charger {charger_id}")

    def access_notes(self, charger_id: int) -> str:
        n = t.charger_notes.c
        r = self.conn.execute(select(n.access_notes).where(n.charger_id == charger_id)).first()
        return "" if r is None else str(r[0])

    def set_access_notes(self, charger_id: int, notes: str) -> None:
        n = t.charger_notes.c
        self.conn.execute(t.charger_notes.delete().where(n.charger_id == charger_id))
        if notes:
            self.conn.execute(insert(t.charger_notes).values(charger_id=charger_id, access_notes=notes))

    def add_connector(
        self, charger_id: int, connector_no: int, type_: ConnectorType, max_power_w: int
    ) -> None:
        k = t.connectors.c
        if self.conn.execute(
            select(k.id).where(k.charger_id == charger_id, k.connector_no == connector_no)
        ).first():
            raise InvalidRequest(f"charger {charger_id} already has connector {connector_no}")
        self.conn.execute(
            insert(t.connectors).values(
                charger_id=charger_id,
                connector_no=connector_no,
                type=type_.value,
                max_power_w=max_power_w,
                status=ConnectorStatus.UNAVAILABLE.value,
                fence_token=0,
            )
        )

    def update_connector(
        self,
        charger_id: int,
        connector_no: int,
        *,
        type_: ConnectorType | None = None,
        max_power_w: int | None = None,
    ) -> None:
        k = t.connectors.c
        values: dict[str, Any] = {}
        if type_ is not None:
            values["type"] = type_.value
        if max_power_w is not None:
            values["max_power_w"] = max_power_w
        where = (k.charger_id == charger_id) & (k.connector_no == connector_no)
        if not self.conn.execute(select(k.id).where(where)).first():
            raise NotFound(f"charger {charger_id} has no connector {connector_no}")
        if values:
            self.conn.execute(update(t.connectors).where(where).values(**values))

    def remove_connector(self, charger_id: int, connector_no: int) -> None:
        """Delete a connector that has never been booked (bookings keep their history)."""
        k = t.connectors.c
        r = self.conn.execute(
            select(k.id).where(k.charger_id == charger_id, k.connector_no == connector_no)
        ).first()
        if r is None:
            raise NotFound(f"charger {charger_id} has no connector {connector_no}")
        if self.conn.execute(
            select(t.bookings.c.id).where(t.bookings.c.connector_id == r[0]).limit(1)
        ).first():
            raise InvalidRequest(f"connector {connector_no} has bookings; it cannot be removed")
        count = self.conn.execute(select(func.count()).where(k.charger_id == charger_id)).scalar_one()
        if count <= 1:
            raise InvalidRequest("a charger needs at least one connector")
        self.conn.execute(t.connectors.delete().where(k.id == r[0]))

    def bookings_of(
        self, *, driver_id: int | None = None, host_id: int | None = None
    ) -> Sequence[BookingRecord]:
        """One party's bookings: a driver's own, or those on a host's chargers (newest first)."""
        if (driver_id is None) == (host_id is None):
            raise ValueError("give a driver or a host")
        q = _BOOKING_COLUMNS.where(
            t.bookings.c.driver_id == driver_id if driver_id is not None else t.chargers.c.host_id == host_id
        )
        return [_booking(r) for r in self.conn.execute(q.order_by(t.bookings.c.id.desc())).mappings()]
