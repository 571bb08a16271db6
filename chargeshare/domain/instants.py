"""The instants the marketplace takes from outside: a booking's start, a search window, a charger's
timestamps. One range for all of them, wide enough for any time a person or a charger's clock could
mean, and far enough from datetime's own limits (years 1 and 9999) that adding a booking's length, a
hold's lifetime or a time zone never overflows, and every store keeps them."""

from __future__ import annotations

from datetime import UTC, datetime

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)  # the first instant out of range
RANGE = "between 1900-01-01 and 8999-12-31 (UTC)"


def in_range(value: datetime) -> bool:
    """Whether `value` lies in [EARLIEST, LATEST); a naive value is read as UTC."""
    try:
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # an offset that carries it past year 1 or 9999
        return False
    return EARLIEST <= utc < LATEST
