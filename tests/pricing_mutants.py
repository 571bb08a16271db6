"""A build that breaks the quote: bookings written a penny above the price they were quoted, on
every store. Their captures follow the booking, so only `capture_matches_quote` can tell."""

from __future__ import annotations

from typing import Any

import pytest

from chargeshare.adapters.memory_store import MemoryBookings
from chargeshare.adapters.sql.bookings import SqlBookings


def penny_above(monkeypatch: pytest.MonkeyPatch) -> None:
    for repository in (MemoryBookings, SqlBookings):
        add = repository.add

        def dearer(self: Any, *args: Any, _add: Any = add, **kw: Any) -> int:
            kw["price_per_kwh"] += 1
            return int(_add(self, *args, **kw))

        monkeypatch.setattr(repository, "add", dearer)
