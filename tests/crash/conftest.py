"""Each crash test gets a database of its own (a SQLite file, or a throw-away PostgreSQL database) and
a `Crash` on it, whose server is always killed at teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chargeshare.adapters.sql import migrate
from chargeshare.adapters.sql.store import make_engine
from tests.crash.harness import Crash


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        # Its schema is made by whichever starts first, the server or the test, the other waiting
        # on migrate's advisory lock.
        url: str = request.getfixturevalue("postgres_url")
        return url
    # SQLite has no such lock: two processes making a fresh file's schema at once would collide, so
    # it is made before any server starts.
    url = f"sqlite:///{tmp_path / 'chargeshare.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def crash(database_url: str, tmp_path: Path) -> Iterator[Crash]:
    run = Crash(database_url, tmp_path)
    yield run
    run.close()
