"""Integration tests run the SQL store itself: the `app` fixture here is on SQLite in memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chargeshare.bootstrap import App, Config, build
from chargeshare.services.clock import ManualClock
from tests.conftest import SQLITE_MEMORY, build_for_tests


@pytest.fixture
def app(clock: ManualClock) -> Iterator[App]:
    a = build_for_tests(Config(database_url=SQLITE_MEMORY), clock=clock)
    yield a
    a.close()


@pytest.fixture
def pg_app(postgres_url: str, clock: ManualClock) -> Iterator[App]:
    """The app on a fresh PostgreSQL database, on the test's manual clock, without Redis locks: the
    database's own guarantees are what a race test there puts to the proof."""
    a = build(Config(database_url=postgres_url, locks_enabled=False, password_hash="fast"), clock=clock)
    yield a
    a.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_app(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[App]:
    """The app on each SQL store in turn: SQLite in memory, then a fresh PostgreSQL database."""
    url = SQLITE_MEMORY if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    app = build_for_tests(Config(database_url=url, locks_enabled=False, password_hash="fast"), clock=clock)
    yield app
    app.close()
