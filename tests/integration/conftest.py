"""Integration tests run the SQL store itself: the `app` fixture here is on SQLite in memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chargeshare.bootstrap import App, Config
from chargeshare.services.clock import ManualClock
from tests.conftest import SQLITE_MEMORY, build_for_tests


@pytest.fixture
def app(clock: ManualClock) -> Iterator[App]:
    a = build_for_tests(Config(database_url=SQLITE_MEMORY), clock=clock)
    yield a
    a.close()
