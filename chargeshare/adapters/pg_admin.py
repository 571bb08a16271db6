"""Throw-away PostgreSQL databases for runs that must not share state (scenarios, benchmarks)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


@contextmanager
def temporary_database(
    server_url: str, prefix: str = "cs_run", *, connect_timeout_s: int | None = None
) -> Iterator[str]:
    """Create a fresh database on the server `server_url` points at; drop it afterwards."""
    base = make_url(server_url)
    connect_args = {} if connect_timeout_s is None else {"connect_timeout": connect_timeout_s}
    admin = create_engine(
        base.set(database="postgres"), isolation_level="AUTOCOMMIT", connect_args=connect_args
    )
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
