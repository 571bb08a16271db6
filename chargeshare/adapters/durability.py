"""Group commit for OCPP acknowledgements: many commits, one fsync.

A CALLRESULT may only leave once its effect is durable. On a SQLite file, a commit with
synchronous=FULL fsyncs on the committing thread, which for the OCPP server is the event loop: every
other charger waits behind each disk flush. Instead, writes made while handling a charger frame
commit with synchronous=NORMAL (in WAL mode: safe against a process crash, not yet against an OS
crash), and the reply waits for `flushed()`: an fsync of the write-ahead log, run in a thread, shared
by every reply waiting at the time. Writes made anywhere else (HTTP API, housekeeping) keep
synchronous=FULL and are durable when their commit returns, as before.

On PostgreSQL the same: units of work inside `deferred()` run on connections with synchronous_commit=off
(the commit returns once its record is in the server's WAL buffers, visible to everyone), and
`flushed()` commits one transaction that writes to the WAL (a transactional logical message, which
touches no table) with synchronous_commit on: PostgreSQL then flushes the WAL up to that commit's
record, which lies after every commit that returned before it. A role whose right to write such messages
was revoked gets no group commit: every commit waits for its flush. A crash of the PostgreSQL server may
lose deferred commits not yet flushed, which no reply has acknowledged (the charger sends them again).
Every other writer's commit waits for its own flush, and since the WAL is one sequence, that flush
covers every deferred commit it could have read: the payments worker's claim on a step is durable only
with the stop that queued it.

An in-memory database has no disk, so there `flushed()` returns at once.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from chargeshare.adapters.sql import SqlStore
from chargeshare.adapters.sql.store import make_engine

_SYNC_KEY = "chargeshare_synchronous"  # per pooled DBAPI connection: the synchronous level it runs at
_FULL, _NORMAL = 2, 1

# Flushes run on a thread of their own, not the loop's default executor: that one also checks charger
# passwords (PBKDF2, deliberately slow), and a fleet reconnecting at once would queue every
# acknowledgement's fsync behind them. One thread for the process: flushes run one at a time anyway.
_FSYNC_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal-fsync")


class GroupFlusher:
    """Runs `sync` in a thread, at most one at a time; `flushed()` returns after a run of `sync` that
    started after the call. Callers that arrive while a run is in flight share the next run."""

    def __init__(self, sync: Callable[[], None]) -> None:
        self._sync = sync
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_flight = False
        self._next: list[asyncio.Future[None]] | None = None  # released by the next run to start
        self.runs = 0  # how many times `sync` has started (for tests and benchmarks)

    async def flushed(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests, a restarted server): nothing carries over
            self._loop, self._in_flight, self._next = loop, False, None
        # A future per caller, so one caller giving up cancels only its own wait, never the run
        # others are waiting on (cheaper than shielding one shared future per caller).
        waiting: asyncio.Future[None] = loop.create_future()
        if self._next is None:
            self._next = [waiting]
        else:
            self._next.append(waiting)
        if not self._in_flight:
            self._start(loop)
        await waiting

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._in_flight = True
        loop.create_task(self._run(loop))

    async def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        # The batch closes only now, just before the flush starts: callers arriving before this
        # task runs (in the same turn of the loop) still ride on it.
        batch, self._next = self._next, None
        assert batch is not None
        self.runs += 1
        closing = False
        try:
            await loop.run_in_executor(_FSYNC_THREAD, self._sync)
        except asyncio.CancelledError:  # only a loop shutting down cancels this task
            closing = True
            raise
        except Exception as exc:  # nobody in this batch may be acknowledged
            for waiting in batch:
                if not waiting.done():
                    waiting.set_exception(exc)
        else:
            for waiting in batch:
                if not waiting.done():
                    waiting.set_result(None)
        finally:
            if loop is self._loop:
                self._in_flight = False
                if self._next is not None and not closing:  # a run started now could never end
                    self._start(loop)


def fsync_file(path: str) -> None:
    """fsync a file by name. A missing write-ahead log means SQLite checkpointed it into the database
    (and synced that) and removed it: nothing is left to flush."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ImmediateDurability:
    """Every commit is durable when it returns (PostgreSQL, in-memory SQLite)."""

    @contextmanager
    def deferred(self) -> Iterator[None]:
        yield

    async def flushed(self) -> None:
        return None


class _GroupCommit:
    """What both group commits share: a per-thread "deferred" flag, and one flush shared by every
    reply waiting (`GroupFlusher`)."""

    def __init__(self, store: SqlStore, sync: Callable[[], None]) -> None:
        self._store = store
        self._local = threading.local()
        self.flusher = GroupFlusher(sync)

    def deferring(self) -> bool:
        return bool(getattr(self._local, "deferred", False))

    def _entering(self) -> None:
        """Called as a thread enters `deferred()`."""

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Writes committed on this thread inside the block are durable only once `flushed()` has
        returned: whoever opened the block awaits it before telling anyone. A thread-local, not a
        context variable, so a task spawned from inside the block does not inherit it."""
        outer = self.deferring()
        self._local.deferred = True
        self._entering()
        try:
            yield
        finally:
            self._local.deferred = outer

    async def flushed(self) -> None:
        await self.flusher.flushed()


class SqliteGroupCommit(_GroupCommit):
    """SQLite file in WAL mode: commits inside `deferred()` skip their own fsync; `flushed()` makes
    every commit made before it durable with one shared fsync of the write-ahead log."""

    def __init__(self, store: SqlStore, *, sync: Callable[[], None] | None = None) -> None:
        database = store.engine.url.database
        assert database, "group commit needs a SQLite file"
        self.wal_path = database + "-wal"
        super().__init__(store, sync or (lambda: fsync_file(self.wal_path)))
        # Before each unit of work: on checkout from the pool, or on a connection a thread holds
        # (`SqlStore.hold_here`); between transactions is the only time SQLite lets the level change.
        event.listen(store.engine, "checkout", self._on_checkout)
        store.unit_hooks.append(self._set_level)

    def _entering(self) -> None:
        self._store.hold_here()  # such a thread (the OCPP server's loop) runs unit after unit

    def _on_checkout(self, dbapi_conn: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        self._set_level(dbapi_conn, record.info)

    def _set_level(self, dbapi_conn: Any, info: dict[Any, Any]) -> None:
        level = _NORMAL if self.deferring() else _FULL
        if info.get(_SYNC_KEY) != level:
            dbapi_conn.execute(f"PRAGMA synchronous={level}")
            info[_SYNC_KEY] = level


# Connections for deferred units of work: the OCPP server's event loop runs them one at a time.
DEFERRED_POOL_SIZE = 2


class PostgresGroupCommit(_GroupCommit):
    """PostgreSQL: commits inside `deferred()` do not wait for the WAL flush; `flushed()` makes every
    commit made before it durable with one synchronous commit, shared by every reply waiting."""

    def __init__(self, store: SqlStore, *, deferred_engine: Engine | None = None) -> None:
        super().__init__(store, lambda: flush_wal(store.engine))
        store.deferred_engine = deferred_engine or make_engine(
            store.url, pool_size=DEFERRED_POOL_SIZE, commit_waits_for_flush=False, **store.timeouts
        )
        store.deferring = self.deferring


# A commit waits for the WAL flush only if its transaction wrote WAL: taking a transaction id alone
# does not, a transactional logical message does (and changes no table).
_FLUSH_WAL = "SELECT pg_logical_emit_message(true, 'chargeshare.flush', '')"
# By name, not signature: PostgreSQL 17 gave the function a fourth argument (with a default).
_MAY_FLUSH = (
    "SELECT coalesce(bool_or(has_function_privilege(oid, 'execute')), false) FROM pg_proc "
    "WHERE proname = 'pg_logical_emit_message' AND pronamespace = 'pg_catalog'::regnamespace "
    "AND pronargs >= 3 AND proargtypes[0] = 'boolean'::regtype AND proargtypes[2] = 'text'::regtype"
)


def flush_wal(engine: Engine) -> None:
    """Every commit made on the server before the call is on disk when this returns."""
    with engine.begin() as conn:
        conn.exec_driver_sql(_FLUSH_WAL)


def may_flush_wal(engine: Engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.exec_driver_sql(_MAY_FLUSH).scalar_one())


def durability_for(store: object) -> SqliteGroupCommit | PostgresGroupCommit | ImmediateDurability:
    if not isinstance(store, SqlStore) or isinstance(store.engine.pool, StaticPool):
        return ImmediateDurability()
    if store.dialect == "sqlite":
        return SqliteGroupCommit(store)
    if store.dialect == "postgresql" and may_flush_wal(store.engine):
        return PostgresGroupCommit(store)
    return ImmediateDurability()
