"""Integration tests run the SQL store itself: the `app` fixture here is on SQLite in memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chargeshare.bootstrap import App, Config, build
from chargeshare.services.clock import ManualClock


@pytest.fixture
def app(clock: ManualClock) -> Iterator[App]:
    a = build(Config(database_url="sqlite://"), clock=clock)
    yield a
    a.close()
