"""The PostgreSQL pool after the server dropped its connections (a restart, a failover, an idle
timeout): a connection that sat idle is checked before use and replaced, so the next unit of work
runs; one in steady use is not checked (that round trip per unit of work is what it saves)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError

from chargeshare.adapters.sql import store
from chargeshare.adapters.sql.store import make_engine

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    e = make_engine(postgres_url)
    yield e
    e.dispose()


def drop_all_connections_to(url: str) -> int:
    """What a restarting server does to every session: terminated from another connection."""
    name = make_url(url).database
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            ).scalar_one()
    finally:
        admin.dispose()
    return int(killed)


def backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_an_idle_connection_dropped_by_the_server_is_replaced_before_use(
    engine: Engine, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = backend_pid(engine)  # one pooled connection, now idle
    assert drop_all_connections_to(postgres_url) == 1
    monkeypatch.setattr(store, "PING_AFTER_IDLE_S", 0.0)  # it has been idle long enough
    after = backend_pid(engine)
    assert after != before


def test_a_connection_in_steady_use_is_not_pinged(
    engine: Engine, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = backend_pid(engine)
    monkeypatch.setattr(store, "PING_AFTER_IDLE_S", 3600.0)
    drop_all_connections_to(postgres_url)
    # Not checked, so its unit of work meets the dropped connection; the pool then replaces it.
    with pytest.raises(DBAPIError) as dropped:
        backend_pid(engine)
    assert dropped.value.connection_invalidated
    assert backend_pid(engine) != before
