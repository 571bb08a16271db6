"""The schema's version, kept by Alembic: bring a database to the head revision, or say where it is.

A fresh database is made from the metadata and stamped with the head revision; one made before
migrations existed is stamped with the baseline and upgraded; one at the head is left alone (no DDL
on a normal start). On PostgreSQL the whole of it runs under an advisory lock, so processes starting
at once take turns: the first does the work, the others find the database current.
"""

from __future__ import annotations

import time
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from chargeshare.adapters.sql import schema as t

MIGRATIONS = Path(__file__).parent / "migrations"
BASELINE = "0001"  # the schema before migrations existed
HEAD = "0041"
# pg_advisory_lock key for schema changes ("CSSC"): one process at a time.
ADVISORY_KEY = 0x43535343


class SchemaBehind(Exception):
    """The database's schema is older than this code needs; `chargeshare db upgrade` brings it up."""


def alembic_config(conn: Connection) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def head_of_scripts() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


class SchemaLocked(Exception):
    """Another process kept the schema lock for longer than this one would wait."""


def upgrade(engine: Engine, *, lock_timeout_s: int = 60) -> str:
    """Bring the database to HEAD; says what was done: "created", "upgraded from X" or "current".

    On PostgreSQL its statements may wait `lock_timeout_s` for a lock (the advisory one, or a table
    under DDL) and run as long as they need: rewriting a large table may take longer than the
    store's statement timeout allows a request. Both return to the connection's defaults after."""
    with engine.connect() as conn:
        postgres = engine.dialect.name == "postgresql"
        if postgres:
            conn.exec_driver_sql(f"SET lock_timeout = '{int(lock_timeout_s)}s'")
            conn.exec_driver_sql("SET statement_timeout = 0")
            _take_schema_lock(conn, lock_timeout_s)
        try:
            return _upgrade(conn)
        finally:
            if postgres:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
                conn.exec_driver_sql("RESET lock_timeout")
                conn.exec_driver_sql("RESET statement_timeout")
                conn.commit()


def _take_schema_lock(conn: Connection, timeout_s: float) -> None:
    """The advisory lock, tried again and again rather than waited on: a process blocked in
    `pg_advisory_lock` holds a snapshot, which the holder's `CREATE INDEX CONCURRENTLY` waits to see
    end, so the two would deadlock. Between tries this process holds no snapshot."""
    deadline = time.monotonic() + timeout_s
    pause = 0.01
    while True:
        taken = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}).scalar_one()
        conn.commit()
        if taken:
            return
        if time.monotonic() >= deadline:
            raise SchemaLocked(f"another process has held the schema lock for over {timeout_s:g} s")
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def _upgrade(conn: Connection) -> str:
    version = current(conn)
    fresh = version is None and not inspect(conn).has_table("chargers")
    conn.rollback()
    if version == HEAD:
        return "current"
    if fresh:
        with conn.begin():
            _create(conn)
            _stamp(conn, HEAD)
        return "created"
    if version is None:
        with conn.begin():
            _stamp(conn, BASELINE)
        version = BASELINE
    command.upgrade(alembic_config(conn), "head")
    conn.commit()
    return f"upgraded from {version}"


def check_current(engine: Engine) -> None:
    """Raise SchemaBehind unless the database is at HEAD (what a server checks instead of migrating)."""
    with engine.connect() as conn:
        version = current(conn)
    if version != HEAD:
        raise SchemaBehind(f"the database schema is at {version or 'no version'}, this code needs {HEAD}")


def _create(conn: Connection) -> None:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.exec_driver_sql(t.POSTGRES_DDL[0])
        conn.exec_driver_sql(t.POSTGRES_DDL[1])
    t.metadata.create_all(conn)
    for ddl in t.SQLITE_DDL if dialect == "sqlite" else t.POSTGRES_DDL[2:]:
        conn.exec_driver_sql(ddl)
    for ddl in t.HOUSEKEEPING_INDEX_DDL:
        conn.exec_driver_sql(ddl)


def _stamp(conn: Connection, revision: str) -> None:
    """What `alembic stamp` writes, without loading the scripts (a fresh database per test is common)."""
    conn.exec_driver_sql(
        "CREATE TABLE IF NOT EXISTS alembic_version ("
        "version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
    )
    conn.exec_driver_sql("DELETE FROM alembic_version")
    conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": revision})
