"""OCPP timestamps are written in UTC, to the millisecond, with a Z; an instant formatted before is
written the same whatever zone it comes in, and another instant is never given its text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from chargeshare.ocpp import timestamps
from chargeshare.ocpp.timestamps import format_ts, parse_ts


def test_instants_formatted_before_are_not_taken_for_others() -> None:
    first = datetime(2026, 3, 2, 9, 1, 0, 250_000, tzinfo=UTC)
    assert format_ts(first) == format_ts(first) == "2026-03-02T09:01:00.250Z"
    assert format_ts(first + timedelta(milliseconds=1)) == "2026-03-02T09:01:00.251Z"
    same_elsewhere = datetime(2026, 3, 2, 10, 1, 0, 250_000, tzinfo=timezone(timedelta(hours=1)))
    assert format_ts(same_elsewhere) == "2026-03-02T09:01:00.250Z"
    many = [first + timedelta(seconds=s) for s in range(1_000)]
    assert [parse_ts(format_ts(t)) for t in many] == many
    assert format_ts(first) == "2026-03-02T09:01:00.250Z"
    assert len(timestamps._texts) <= timestamps._TEXTS_HELD


def test_a_naive_instant_is_read_as_local_time_each_time() -> None:
    naive = datetime(2026, 3, 2, 9, 1)
    assert format_ts(naive) == naive.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert naive not in timestamps._texts


@pytest.mark.parametrize("wall", [datetime(2026, 10, 25, 1, 30), datetime(2026, 3, 29, 1, 30)])
def test_wall_times_told_apart_by_fold_alone_are_other_instants(wall: datetime) -> None:
    # Equal and hashed alike (same tzinfo, fold ignored), yet an hour apart.
    first, second = (wall.replace(tzinfo=ZoneInfo("Europe/London"), fold=f) for f in (0, 1))
    expected = [
        t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") for t in (first, second)
    ]
    assert expected[0] != expected[1]
    assert [format_ts(first), format_ts(second), format_ts(first)] == [*expected, expected[0]]
