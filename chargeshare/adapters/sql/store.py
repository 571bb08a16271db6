"""The SQL store: its engine and connection policy (SQLite file or memory, or PostgreSQL), and the
unit of work whose repositories each own their statements (one module per aggregate)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from chargeshare.adapters.sql import migrate
from chargeshare.adapters.sql import schema as t
from chargeshare.adapters.sql.accounts import SqlAccounts
from chargeshare.adapters.sql.bookings import SqlBookings
from chargeshare.adapters.sql.charger_files import SqlChargerFiles
from chargeshare.adapters.sql.charger_reports import SqlChargerReports
from chargeshare.adapters.sql.chargers import SqlChargers
from chargeshare.adapters.sql.command_refusals import SqlCommandRefusals
from chargeshare.adapters.sql.fleet import SqlFleets
from chargeshare.adapters.sql.grid import SqlGrid
from chargeshare.adapters.sql.ledger import SqlLedger
from chargeshare.adapters.sql.notices import SqlNotifications, SqlSecurityLog
from chargeshare.adapters.sql.outbox import SqlPaymentsOutbox
from chargeshare.adapters.sql.pricing import SqlPricing
from chargeshare.adapters.sql.sessions import SqlSessions
from chargeshare.adapters.sql.smart_charging import SqlSmartCharging
from chargeshare.adapters.sql.sqlite_geo import ensure_math_functions
from chargeshare.adapters.sql.tokens import SqlIdTokens
from chargeshare.adapters.sql.v2g import SqlV2g
from chargeshare.domain.errors import DatabaseBusy

READ_ONLY = "chargeshare_read_only"  # execution option: begin a reading transaction

# How long a statement may wait for a lock, and run at all, before it gives up with DatabaseBusy. A
# table locked by someone else must not hold a caller (on the OCPP server, possibly its event loop)
# for as long as the holder pleases. Schema migrations set their own (see `migrate.upgrade`).
DEFAULT_LOCK_TIMEOUT_S = 5.0
DEFAULT_STATEMENT_TIMEOUT_S = 30.0  # PostgreSQL only; 0: no limit
BUSY_RETRY_AFTER_S = 1.0

_PG_LOCK_NOT_AVAILABLE, _PG_QUERY_CANCELED = "55P03", "57014"  # lock_timeout, statement_timeout
_SQLITE_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def busy_error(exc: BaseException) -> DatabaseBusy | None:
    """DatabaseBusy for a wait the database bounded (a lock not granted in time, a statement the
    statement timeout cancelled, SQLite's busy timeout, no pooled connection free in time), raised
    by SQLAlchemy or straight by the driver; None for any other error."""
    if isinstance(exc, sa_exc.TimeoutError):
        return DatabaseBusy(f"no database connection came free in time: {exc}", BUSY_RETRY_AFTER_S)
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate == _PG_LOCK_NOT_AVAILABLE:
        return DatabaseBusy("the database is busy: a lock was not granted in time", BUSY_RETRY_AFTER_S)
    if sqlstate == _PG_QUERY_CANCELED:
        return DatabaseBusy("the database is busy: a statement ran past its time limit", BUSY_RETRY_AFTER_S)
    code = getattr(orig, "sqlite_errorcode", None)  # absent on one the module raises by itself
    if isinstance(orig, sqlite3.OperationalError) and code is not None and code & 0xFF in _SQLITE_BUSY_CODES:
        return DatabaseBusy(
            "the database is busy: it stayed locked past the busy timeout", BUSY_RETRY_AFTER_S
        )
    return None


def _pg_timeouts(url: str, lock_timeout_s: float, statement_timeout_s: float) -> dict[str, str]:
    """Both timeouts as the connection's startup options rather than a SET after connecting, so they
    are the session's defaults: a `RESET` (the migration's) returns to them, not to the server's.
    Options already in the URL come after ours, and win."""
    lock_ms = max(1, round(lock_timeout_s * 1000))  # 0 would mean no limit at all
    statement_ms = round(statement_timeout_s * 1000)
    ours = f"-c lock_timeout={lock_ms} -c statement_timeout={statement_ms}"
    given = make_url(url).query.get("options")
    return {"options": f"{ours} {given}" if isinstance(given, str) else ours}


def make_engine(
    url: str,
    *,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S,
    pool_size: int = 10,
    commit_waits_for_flush: bool = True,
) -> Engine:
    if not lock_timeout_s > 0 or statement_timeout_s < 0:
        raise ValueError(
            f"the lock timeout must be positive and the statement timeout 0 (none) or more, "
            f"got {lock_timeout_s} and {statement_timeout_s}"
        )
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            # SQLite's busy timeout: how long a statement waits for another connection's lock.
            connect_args={"check_same_thread": False, "timeout": lock_timeout_s},
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
    postgres = url.startswith("postgres")
    connect_args = _pg_timeouts(url, lock_timeout_s, statement_timeout_s) if postgres else {}
    if not commit_waits_for_flush:  # PostgreSQL group commit (adapters/durability.py)
        connect_args["options"] = f"{connect_args.get('options', '')} -c synchronous_commit=off".strip()
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=20,
        pool_timeout=lock_timeout_s,  # waiting for a free connection is waiting for a lock too
        connect_args=connect_args,
    )
    ping_when_idle(engine)
    if postgres:
        readings_see_one_snapshot(engine)
    return engine


def readings_see_one_snapshot(engine: Engine) -> None:
    """A reading (`SqlStore.reading`) is REPEATABLE READ on PostgreSQL: one snapshot for all its
    statements, as on SQLite, so a check reading many tables while traffic flows sees no commit by
    halves; units of work stay READ COMMITTED. Set on the driver before its implicit BEGIN, which
    then names the level: no statement of its own."""
    import psycopg  # only a PostgreSQL store loads the driver
    from psycopg import IsolationLevel
    from psycopg.pq import TransactionStatus

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        raw = conn.connection.driver_connection
        if not isinstance(raw, psycopg.Connection) or raw.info.transaction_status != TransactionStatus.IDLE:
            return  # begun already: its level is set
        reading = bool(conn.get_execution_options().get(READ_ONLY))
        level = IsolationLevel.REPEATABLE_READ if reading else None
        if raw.isolation_level != level:
            raw.isolation_level = level


# A pooled connection unused for this long is pinged before it is handed out.
PING_AFTER_IDLE_S = 2.0
_IDLE_SINCE = "chargeshare_idle_since"


def ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use only if it sat idle (the server may have restarted or
    dropped it meanwhile). SQLAlchemy's pre-ping checks every checkout: a round trip per unit of
    work, and a charger's frame is one unit of work. A connection dropped while in steady use
    fails its unit of work, which the caller sees as a database error (a charger sends again)."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool discards this connection and hands out another (a new one if need be).
            raise sa_exc.DisconnectionError(f"a pooled connection was dropped: {exc}") from exc


class SqlStore:
    def __init__(
        self,
        url: str,
        *,
        lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
        statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S,
    ) -> None:
        self.url = url
        self.timeouts = {"lock_timeout_s": lock_timeout_s, "statement_timeout_s": statement_timeout_s}
        self.engine = make_engine(url, lock_timeout_s=lock_timeout_s, statement_timeout_s=statement_timeout_s)
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
        # PostgreSQL group commit: units of work on a thread inside `deferred()` commit on an engine
        # whose commits do not wait for the WAL flush (adapters/durability.py sets these).
        self.deferred_engine: Engine | None = None
        self.deferring: Callable[[], bool] = lambda: False
        # Told how long each unit of work took, in seconds (metrics).
        self.unit_observers: list[Callable[[float], None]] = []

    @property
    def in_memory(self) -> bool:
        return self._memory_lock is not None

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

    def create_schema(self) -> str:
        """Bring the schema to the head revision (see `migrate`); says what was done."""
        return migrate.upgrade(self.engine)

    def drop_schema(self) -> None:
        with self.engine.begin() as conn:
            if self.dialect == "sqlite":
                conn.exec_driver_sql("DROP TABLE IF EXISTS charger_rtree")
            t.metadata.drop_all(conn)
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")

    def transaction(self) -> AbstractContextManager[SqlUnitOfWork]:
        if self._memory_lock is not None and not self.unit_observers:
            return _MemoryUnit(self)
        if not self.unit_observers:
            return self._transaction()
        return self._observed()

    @contextmanager
    def _observed(self) -> Iterator[SqlUnitOfWork]:
        began = time.perf_counter()
        try:
            with self._transaction() as tx:
                yield tx
        finally:
            took = time.perf_counter() - began
            for observe in self.unit_observers:
                observe(took)

    @contextmanager
    def _transaction(self) -> Iterator[SqlUnitOfWork]:
        """A unit of work; DatabaseBusy if the database would not answer within its bounded waits
        (rolled back: nothing of it is kept)."""
        try:
            if self.dialect != "sqlite":
                engine = self.deferred_engine if self.deferred_engine and self.deferring() else self.engine
                with engine.begin() as conn:
                    yield SqlUnitOfWork(conn, self.dialect)
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
        except Exception as exc:
            busy = busy_error(exc)
            if busy is None:
                raise
            raise busy from exc

    def _on_the_driver(self, conn: Connection) -> Iterator[SqlUnitOfWork]:
        """One SQLite unit of work begun and committed straight on the driver: SQLAlchemy's
        transaction objects and events cost more than the statements of a heartbeat. A statement
        that goes through `Connection.execute` makes SQLAlchemy begin too (its "begin" listener sees
        the driver already in a transaction and sends nothing); then SQLAlchemy commits or rolls back."""
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("BEGIN IMMEDIATE")
        try:
            yield SqlUnitOfWork(conn, self.dialect)
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

    def reading(self) -> AbstractContextManager[SqlUnitOfWork]:
        """A transaction that only reads: on SQLite it does not take the write lock (in memory, one
        connection serves every unit of work, so a reading is a transaction like any other)."""
        if self._memory_lock is not None:
            return self.transaction()
        return self._reading()

    @contextmanager
    def _reading(self) -> Iterator[SqlUnitOfWork]:
        try:
            with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn, conn.begin():
                yield SqlUnitOfWork(conn, self.dialect)
        except Exception as exc:
            busy = busy_error(exc)
            if busy is None:
                raise
            raise busy from exc

    def close(self) -> None:
        if self._memory_conn is not None:
            self._memory_conn.close()
            self._memory_conn = None
        with self._held_lock:
            for conn in self._held.values():
                conn.close()
            self._held.clear()
        if self.deferred_engine is not None:
            self.deferred_engine.dispose()
        self.engine.dispose()


class _MemoryUnit:
    """A unit of work on the in-memory store's one connection, as `_transaction` runs it (begun and
    committed on the driver, a busy database raised as DatabaseBusy) but as a plain context manager:
    the generator-based layers cost about as much as an empty unit of work, and a DES run makes
    hundreds of thousands of them."""

    __slots__ = ("conn", "raw", "store")

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def __enter__(self) -> SqlUnitOfWork:
        store = self.store
        lock = store._memory_lock
        assert lock is not None
        lock.acquire()
        try:
            held = store._memory_conn
            if held is None or held.closed:
                held = store._memory_conn = store.engine.connect()
            raw = held.connection.dbapi_connection
            assert raw is not None
            raw.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            lock.release()
            _raise_busy(exc)
            raise
        self.conn, self.raw = held, raw
        return SqlUnitOfWork(held, store.dialect)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: Any) -> None:
        conn, raw = self.conn, self.raw
        lock = self.store._memory_lock
        assert lock is not None
        try:
            if exc is None:
                if conn.in_transaction():
                    conn.commit()
                else:
                    raw.commit()
                return
            if conn.in_transaction():
                conn.rollback()
            elif raw.in_transaction:
                raw.rollback()
        except BaseException as failed:
            _raise_busy(failed)
            raise
        finally:
            lock.release()
        _raise_busy(exc)  # otherwise the body's own exception goes on as it was


def _raise_busy(exc: BaseException) -> None:
    """Raise DatabaseBusy from `exc` if it is a wait the database bounded (see `busy_error`)."""
    if isinstance(exc, Exception):
        busy = busy_error(exc)
        if busy is not None:
            raise busy from exc


class SqlUnitOfWork:
    """The `UnitOfWork` port over one SQLAlchemy connection in one database transaction. Each
    repository is made when first asked for: a charger's frame touches one or two of them. Unmade
    ones are the class's None, so opening a unit (a DES run opens hundreds of thousands) sets only
    two attributes."""

    _accounts: SqlAccounts | None = None
    _chargers: SqlChargers | None = None
    _bookings: SqlBookings | None = None
    _sessions: SqlSessions | None = None
    _ledger: SqlLedger | None = None
    _outbox: SqlPaymentsOutbox | None = None
    _notifications: SqlNotifications | None = None
    _security: SqlSecurityLog | None = None
    _reports: SqlChargerReports | None = None
    _tokens: SqlIdTokens | None = None
    _smart: SqlSmartCharging | None = None
    _pricing: SqlPricing | None = None
    _grid: SqlGrid | None = None
    _v2g: SqlV2g | None = None
    _refusals: SqlCommandRefusals | None = None
    _files: SqlChargerFiles | None = None
    _fleet: SqlFleets | None = None

    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    @property
    def accounts(self) -> SqlAccounts:
        if self._accounts is None:
            self._accounts = SqlAccounts(self.conn, self.dialect)
        return self._accounts

    @property
    def chargers(self) -> SqlChargers:
        if self._chargers is None:
            self._chargers = SqlChargers(self.conn, self.dialect)
        return self._chargers

    @property
    def bookings(self) -> SqlBookings:
        if self._bookings is None:
            self._bookings = SqlBookings(self.conn, self.dialect)
        return self._bookings

    @property
    def sessions(self) -> SqlSessions:
        if self._sessions is None:
            self._sessions = SqlSessions(self.conn, self.dialect)
        return self._sessions

    @property
    def ledger(self) -> SqlLedger:
        if self._ledger is None:
            self._ledger = SqlLedger(self.conn, self.dialect)
        return self._ledger

    @property
    def outbox(self) -> SqlPaymentsOutbox:
        if self._outbox is None:
            self._outbox = SqlPaymentsOutbox(self.conn, self.dialect)
        return self._outbox

    @property
    def notifications(self) -> SqlNotifications:
        if self._notifications is None:
            self._notifications = SqlNotifications(self.conn, self.dialect)
        return self._notifications

    @property
    def security(self) -> SqlSecurityLog:
        if self._security is None:
            self._security = SqlSecurityLog(self.conn, self.dialect)
        return self._security

    @property
    def reports(self) -> SqlChargerReports:
        if self._reports is None:
            self._reports = SqlChargerReports(self.conn, self.dialect)
        return self._reports

    @property
    def tokens(self) -> SqlIdTokens:
        if self._tokens is None:
            self._tokens = SqlIdTokens(self.conn, self.dialect)
        return self._tokens

    @property
    def smart(self) -> SqlSmartCharging:
        if self._smart is None:
            self._smart = SqlSmartCharging(self.conn, self.dialect)
        return self._smart

    @property
    def pricing(self) -> SqlPricing:
        if self._pricing is None:
            self._pricing = SqlPricing(self.conn, self.dialect)
        return self._pricing

    @property
    def grid(self) -> SqlGrid:
        if self._grid is None:
            self._grid = SqlGrid(self.conn, self.dialect)
        return self._grid

    @property
    def v2g(self) -> SqlV2g:
        if self._v2g is None:
            self._v2g = SqlV2g(self.conn, self.dialect)
        return self._v2g

    @property
    def refusals(self) -> SqlCommandRefusals:
        if self._refusals is None:
            self._refusals = SqlCommandRefusals(self.conn, self.dialect)
        return self._refusals

    @property
    def files(self) -> SqlChargerFiles:
        if self._files is None:
            self._files = SqlChargerFiles(self.conn, self.dialect)
        return self._files

    @property
    def fleet(self) -> SqlFleets:
        if self._fleet is None:
            self._fleet = SqlFleets(self.conn, self.dialect)
        return self._fleet
