"""One app per store the repositories must agree on: the in-memory fake, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chargeshare.bootstrap import App, Config
from chargeshare.services.clock import ManualClock
from tests.conftest import build_for_tests


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def app(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[App]:
    url = {"memory": "memory://", "sqlite": "sqlite://"}.get(request.param)
    if url is None:
        url = request.getfixturevalue("postgres_url")
    a = build_for_tests(Config(database_url=url, locks_enabled=False, password_hash="fast"), clock=clock)
    yield a
    a.close()
