"""Throwaway databases for benchmarks: a SQLite file in a temporary directory, or a fresh PostgreSQL
database created on a server (from an admin URL) and dropped again afterwards."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from chargeshare.adapters.pg_admin import temporary_database

DEFAULT_POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CONNECT_TIMEOUT_S = 5


class BenchUnavailable(Exception):
    """A backend the benchmark was asked for cannot be used; the message says why."""


def check_postgres(admin_url: str) -> str:
    """Connect to the server and check that PostGIS and btree_gist can be installed.

    Returns the server's version line; raises BenchUnavailable otherwise.
    """
    try:
        url = make_url(admin_url)
    except Exception as exc:
        raise BenchUnavailable(f"not a database URL: {admin_url!r} ({exc})") from exc
    if url.get_backend_name() != "postgresql":
        raise BenchUnavailable(f"--postgres-url must be a postgresql URL, got {url.get_backend_name()!r}")
    engine = create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    try:
        with engine.connect() as conn:
            version = str(conn.execute(text("SELECT version()")).scalar_one())
            available = set(
                conn.execute(
                    text("SELECT name FROM pg_available_extensions WHERE name IN ('postgis', 'btree_gist')")
                ).scalars()
            )
    except Exception as exc:
        raise BenchUnavailable(
            f"PostgreSQL at {url.render_as_string(hide_password=True)} is not reachable: {exc}"
        ) from exc
    finally:
        engine.dispose()
    missing = {"postgis", "btree_gist"} - available
    if missing:
        raise BenchUnavailable(
            f"PostgreSQL extensions not available on the server: {', '.join(sorted(missing))}"
        )
    return version


@contextmanager
def temporary_postgres(admin_url: str, prefix: str = "cs_bench") -> Iterator[str]:
    """Create a fresh, empty database on the admin URL's server; yield its URL; drop it (FORCE)."""
    with temporary_database(admin_url, prefix, connect_timeout_s=CONNECT_TIMEOUT_S) as url:
        yield url


@contextmanager
def temporary_sqlite(name: str = "bench.db") -> Iterator[str]:
    """A SQLite file URL in a temporary directory that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="chargeshare-bench-") as tmp:
        yield f"sqlite:///{Path(tmp) / name}"
