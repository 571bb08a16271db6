"""Builds that break the quote, on every store: bookings written a penny above the price they were
quoted, or quoted a penny above the quote held for their driver (the price moved, and the booking
followed it). Their captures follow the booking, so only `capture_matches_quote` can tell."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from chargeshare.adapters.memory_store import MemoryBookings, MemoryPricing
from chargeshare.adapters.sql.bookings import SqlBookings
from chargeshare.adapters.sql.pricing import SqlPricing
from chargeshare.domain.held_quotes import HeldQuote


def penny_above(monkeypatch: pytest.MonkeyPatch) -> None:
    for repository in (MemoryBookings, SqlBookings):
        add = repository.add

        def dearer(self: Any, *args: Any, _add: Any = add, **kw: Any) -> int:
            kw["price_per_kwh"] += 1
            return int(_add(self, *args, **kw))

        monkeypatch.setattr(repository, "add", dearer)


def penny_above_held(monkeypatch: pytest.MonkeyPatch) -> None:
    for repository in (MemoryPricing, SqlPricing):
        held = repository.held

        def dearer(self: Any, quote_id: int, _held: Any = held) -> HeldQuote:
            quote: HeldQuote = _held(self, quote_id)
            return dataclasses.replace(quote, per_kwh=quote.per_kwh + 1)

        monkeypatch.setattr(repository, "held", dearer)
