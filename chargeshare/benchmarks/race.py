"""`chargeshare bench race`: many drivers book one connector at once, through the booking service.

Each backend x lock mode gets a fresh database and an app built by `chargeshare.bootstrap.build`.
One charger with one connector is registered and booted (instant bookings need an online charger),
`attempts` drivers are added, then `threads` threads release together from a barrier and take drivers
off a shared queue until it is empty, each calling `BookingService.book` for an overlapping
"charge now" window. Wall time runs from the barrier's release to the last thread's exit.

Exactly one booking may win and exactly one card hold may be placed; everything else must be a
`BookingConflict`. Any other exception counts as an error.

Beside the time, the cost per attempt: SQL statements the database was sent and commands the app's
Redis (real, or the in-process fake) was sent; and per backend, locks on's time over locks off's.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, event

from chargeshare.adapters.payments_sim import SimulatedGateway
from chargeshare.adapters.redis_locks import RedisLocks
from chargeshare.adapters.sql import SqlStore
from chargeshare.benchmarks.databases import temporary_postgres, temporary_sqlite
from chargeshare.bootstrap import App, Config, build
from chargeshare.domain.booking import LIVE_STATES
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.errors import BookingConflict
from chargeshare.domain.geo import Point
from chargeshare.domain.tariff import Tariff
from chargeshare.ocpp import V16
from chargeshare.services.booking import BookRequest

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
JOIN_TIMEOUT_S = 300.0
CHARGE_POINT_ID = "BENCH-RACE"
# Locks on without a shared Redis: slot claims in the process's memory, the lock in fakeredis.
IN_PROCESS = "in-process"


@dataclass(frozen=True)
class RaceResult:
    backend: str
    locks: bool
    lock_store: str  # "none", "in-process" or the Redis URL
    attempts: int
    threads: int
    wall_s: float
    winners: int
    conflicts: int
    errors: int
    holds: int
    live_bookings: int
    statements: int = 0  # SQL statements the race sent to the database (BEGIN, COMMIT and savepoints aside)
    redis_commands: int = 0  # commands the race sent to the app's Redis (a script call is one)
    # This run's wall time over the same backend's with locks off, when both ran: the lock's price.
    x_off: float | None = None
    error_samples: tuple[str, ...] = ()

    @property
    def statements_per_attempt(self) -> float:
        return self.statements / self.attempts if self.attempts else 0.0

    @property
    def redis_commands_per_attempt(self) -> float:
        return self.redis_commands / self.attempts if self.attempts else 0.0

    @property
    def attempts_per_s(self) -> float:
        return self.attempts / self.wall_s if self.wall_s > 0 else float("inf")

    @property
    def ok(self) -> bool:
        return self.winners == 1 and self.holds == 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["error_samples"] = list(self.error_samples)
        d["attempts_per_s"] = round(self.attempts_per_s, 1)
        d["statements_per_attempt"] = round(self.statements_per_attempt, 2)
        d["redis_commands_per_attempt"] = round(self.redis_commands_per_attempt, 2)
        d["ok"] = self.ok
        return d


def redact(url: str) -> str:
    """The URL without its password, for reports."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redis_reachable(url: str) -> str | None:
    """None if a Redis answers PING at `url`, else why not."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    except Exception as exc:
        return str(exc)
    try:
        client.ping()
        return None
    except Exception as exc:
        return str(exc)
    finally:
        client.close()


class StatementCounter:
    """Counts the statements every connection of an engine sends from now on, by whichever path
    (SQLAlchemy's or the repositories' straight to the driver): a cursor that counts on PostgreSQL,
    the trace callback on SQLite. Transaction control is left out: its cost is the commit's."""

    CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        self._lock = threading.Lock()
        event.listen(engine, "connect", self._connected)
        engine.dispose()  # connections opened before were not counting

    def saw(self, sql: str) -> None:
        if not sql.lstrip().upper().startswith(self.CONTROL):
            with self._lock:
                self.count += 1

    def _connected(self, dbapi_conn: Any, _record: Any) -> None:
        if isinstance(dbapi_conn, sqlite3.Connection):
            dbapi_conn.set_trace_callback(self.saw)
            return
        import psycopg

        counter = self

        class Counting(psycopg.Cursor[Any]):
            def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
                counter.saw(str(query))
                return super().execute(query, params, **kw)

        dbapi_conn.cursor_factory = Counting


class RedisCommandCounter:
    """Counts the commands a redis-py (or fakeredis) client sends from now on, by wrapping its
    `execute_command`, through which every command and script call goes."""

    def __init__(self, client: Any) -> None:
        self.count = 0
        self._lock = threading.Lock()
        if client is None:
            return
        send = client.execute_command

        def counted(*args: Any, **options: Any) -> Any:
            with self._lock:
                self.count += 1
            return send(*args, **options)

        client.execute_command = counted


@dataclass(frozen=True)
class RaceRun:
    wall_s: float
    outcomes: Counter[str]
    samples: list[str]
    statements: int
    redis_commands: int


def race(app: App, attempts: int, threads: int) -> RaceRun:
    """Set the charger up, then run the race."""
    host = app.marketplace.add_host("bench host")
    charger = app.marketplace.add_charger(
        ChargerSpec(
            CHARGE_POINT_ID,
            host,
            Point(51.5072, -0.1276),
            Tariff(30),
            (ConnectorSpec(1, ConnectorType.TYPE2, 7_400),),
        )
    )
    app.charging.boot(CHARGE_POINT_ID, V16)
    with app.store.transaction() as tx:
        queue = [tx.accounts.add_driver(f"driver {i}", f"BENCH{i}") for i in range(attempts)]
    outcomes: Counter[str] = Counter()
    samples: list[str] = []
    guard = threading.Lock()
    assert isinstance(app.store, SqlStore)
    counted = StatementCounter(app.store.engine)
    commands = RedisCommandCounter(app.redis)
    started: list[float] = []
    barrier = threading.Barrier(threads, action=lambda: started.append(time.perf_counter()))

    def worker() -> None:
        try:
            barrier.wait(timeout=JOIN_TIMEOUT_S)
        except threading.BrokenBarrierError:
            return
        for _ in range(attempts):  # bounded: at most every driver, and the queue empties first
            with guard:
                if not queue:
                    return
                driver_id = queue.pop()
            try:
                app.bookings.book(BookRequest(driver_id, charger.charger_id, 1, 60 + driver_id % 30, 5_000))
                result = "won"
            except BookingConflict:
                result = "conflict"
            except Exception as exc:  # anything else is a bug the benchmark must show
                result = "error"
                with guard:
                    if len(samples) < 5:
                        samples.append(f"{type(exc).__name__}: {exc}")
            with guard:
                outcomes[result] += 1

    pool = [threading.Thread(target=worker, name=f"race-{i}", daemon=True) for i in range(threads)]
    for th in pool:
        th.start()
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    for th in pool:
        th.join(timeout=max(0.0, deadline - time.monotonic()))
    ended = time.perf_counter()
    stuck = sum(th.is_alive() for th in pool)
    if stuck:
        barrier.abort()
        samples.append(f"{stuck} thread(s) still running after {JOIN_TIMEOUT_S:.0f} s")
        outcomes["error"] += stuck
    wall = ended - started[0] if started else 0.0
    return RaceRun(wall, outcomes, samples, counted.count, commands.count)


def run_one(
    backend: str, database_url: str, locks: bool, redis_url: str | None, attempts: int, threads: int
) -> RaceResult:
    app = build(Config(database_url=database_url, redis_url=redis_url, locks_enabled=locks))
    try:
        run = race(app, attempts, threads)
        gateway = app.gateway
        holds = len(gateway.holds) if isinstance(gateway, SimulatedGateway) else -1
        with app.store.transaction() as tx:
            live = sum(1 for b in tx.bookings.all() if b.status in LIVE_STATES)
            connector_id = tx.chargers.get(CHARGE_POINT_ID).connectors[0].connector_id
        if redis_url is not None and isinstance(app.locks, RedisLocks):
            # Leave nothing behind on a shared Redis: the lease (if any) and the fencing counter.
            key = f"{app.locks.prefix}connector:{connector_id}"
            app.locks.client.delete(key, key + ":fence")
    finally:
        app.close()
    return RaceResult(
        backend=backend,
        locks=locks,
        lock_store="none" if not locks else (redact(redis_url) if redis_url else IN_PROCESS),
        attempts=attempts,
        threads=threads,
        wall_s=round(run.wall_s, 4),
        winners=run.outcomes["won"],
        conflicts=run.outcomes["conflict"],
        errors=run.outcomes["error"],
        holds=holds,
        live_bookings=live,
        statements=run.statements,
        redis_commands=run.redis_commands,
        error_samples=tuple(run.samples),
    )


@dataclass(frozen=True)
class RaceParams:
    attempts: int
    backends: tuple[str, ...]
    locks: tuple[bool, ...]
    threads: int
    redis_url: str
    postgres_url: str


def run_races(p: RaceParams, console: Console) -> list[RaceResult]:
    """Every backend x lock mode, each on a fresh database."""
    real_redis: str | None = None
    if "postgres" in p.backends and True in p.locks:
        why = redis_reachable(p.redis_url)
        if why is None:
            real_redis = p.redis_url
            console.print(f"postgres with locks: real Redis at {redact(p.redis_url)}")
        else:
            console.print(
                f"[yellow]Redis at {redact(p.redis_url)} is not reachable ({why}); "
                "claims in process, lock in fakeredis[/]"
            )
    results: list[RaceResult] = []
    for backend in p.backends:
        for locks in p.locks:
            database: AbstractContextManager[str] = (
                temporary_sqlite("race.db") if backend == "sqlite" else temporary_postgres(p.postgres_url)
            )
            redis_url = real_redis if backend == "postgres" and locks else None
            mode = "on" if locks else "off"
            console.print(f"{backend}, locks {mode}: {p.attempts} attempts on {p.threads} threads ...")
            with database as url:
                results.append(run_one(backend, url, locks, redis_url, p.attempts, p.threads))
    return with_x_off(results)


def with_x_off(results: list[RaceResult]) -> list[RaceResult]:
    """Each locks-on run with its time over the same backend's locks-off run, when both ran."""
    off = {r.backend: r.wall_s for r in results if not r.locks}
    return [
        replace(r, x_off=round(r.wall_s / off[r.backend], 2)) if r.locks and off.get(r.backend, 0) > 0 else r
        for r in results
    ]


def render(results: list[RaceResult], console: Console) -> None:
    table = Table(title="One connector, concurrent bookings through BookingService.book")
    columns = (
        "backend",
        "claims",
        "tries",
        "thr",
        "wall s",
        "tries/s",
        "stmts/try",
        "redis/try",
        "x off",
        "won",
        "lost",
        "err",
        "holds",
        "ok",
    )
    for col in columns:
        table.add_column(col, justify="left" if col in ("backend", "claims") else "right")
    for r in results:
        locks = "off" if not r.locks else (IN_PROCESS if r.lock_store == IN_PROCESS else "redis")
        table.add_row(
            r.backend,
            locks,
            str(r.attempts),
            str(r.threads),
            f"{r.wall_s:.2f}",
            f"{r.attempts_per_s:,.0f}",
            f"{r.statements_per_attempt:.2f}",
            f"{r.redis_commands_per_attempt:.2f}",
            "-" if r.x_off is None else f"{r.x_off:.2f}",
            str(r.winners),
            str(r.conflicts),
            str(r.errors),
            str(r.holds),
            "[green]yes[/]" if r.ok else "[red]NO[/]",
        )
    console.print(table)
    for r in results:
        for s in r.error_samples:
            console.print(f"[red]error[/] ({r.backend}, locks {'on' if r.locks else 'off'}): {s}")
