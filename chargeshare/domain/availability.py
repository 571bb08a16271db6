"""A host's weekly availability calendar, in UK local time (so it follows the clocks changing)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from chargeshare.domain.errors import InvalidRequest

UK = ZoneInfo("Europe/London")
MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class WeeklyWindow:
    """Open on `weekday` (0 = Monday) from `start_minute` to `end_minute` after local midnight."""

    weekday: int
    start_minute: int
    end_minute: int

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise InvalidRequest("weekday must be 0 (Monday) to 6 (Sunday)")
        if not 0 <= self.start_minute < self.end_minute <= MINUTES_PER_DAY:
            raise InvalidRequest("a window must start before it ends, within one day (0..1440 minutes)")


def _local_minute(day: datetime, minute: int) -> datetime:
    """Local wall time on `day` at `minute`, as aware UTC (1440 means the next midnight)."""
    base = datetime.combine(day.date(), time(0), tzinfo=UK) + timedelta(days=minute // MINUTES_PER_DAY)
    wall = base.replace(hour=(minute % MINUTES_PER_DAY) // 60, minute=minute % 60)
    return wall.astimezone(UTC)


def open_intervals(
    windows: Iterable[WeeklyWindow], start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The calendar's open periods overlapping [start, end), merged, in UTC."""
    by_day: dict[int, list[WeeklyWindow]] = {}
    for w in windows:
        by_day.setdefault(w.weekday, []).append(w)
    out: list[tuple[datetime, datetime]] = []
    day = start.astimezone(UK).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    while day.astimezone(UTC) < end:
        for w in by_day.get(day.weekday(), []):
            a, b = _local_minute(day, w.start_minute), _local_minute(day, w.end_minute)
            if a < end and start < b:
                out.append((a, b))
        day = (day + timedelta(days=1)).replace(tzinfo=UK)
    out.sort()
    merged: list[tuple[datetime, datetime]] = []
    for a, b in out:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def covers(windows: Iterable[WeeklyWindow], start: datetime, end: datetime) -> bool:
    """True when [start, end) lies wholly inside open time. No calendar at all means always open."""
    windows = list(windows)
    if not windows:
        return True
    return any(a <= start and end <= b for a, b in open_intervals(windows, start, end))
