"""The range of instants the marketplace takes from outside, and the domain rules that use it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.geo import BBox
from chargeshare.domain.instants import EARLIEST, LATEST, in_range
from chargeshare.domain.search import SearchQuery

PLUS_14 = timezone(timedelta(hours=14))
MINUS_5 = timezone(timedelta(hours=-5))


@pytest.mark.parametrize(
    ("value", "inside"),
    [
        (EARLIEST, True),
        (EARLIEST - timedelta(microseconds=1), False),
        (LATEST - timedelta(microseconds=1), True),
        (LATEST, False),
        (datetime(2026, 3, 2, 9, 0), True),  # naive: read as UTC
        (datetime(1, 1, 1, tzinfo=PLUS_14), False),  # before year 1 in UTC: no datetime holds it
        (datetime(9999, 12, 31, 23, 0, tzinfo=MINUS_5), False),  # after year 9999 in UTC
        (datetime(1900, 1, 1, 5, 0, tzinfo=PLUS_14), False),  # 1899 in UTC
        (datetime(8999, 12, 31, 23, 0, tzinfo=MINUS_5), False),  # 9000 in UTC
    ],
)
def test_the_range_is_judged_in_utc(value: datetime, inside: bool) -> None:
    assert in_range(value) is inside


def test_adding_a_day_or_a_time_zone_inside_the_range_never_overflows() -> None:
    last = LATEST - timedelta(microseconds=1)
    assert (last + timedelta(days=30)).astimezone(PLUS_14).year == 9000
    assert (EARLIEST - timedelta(days=30)).astimezone(MINUS_5).year == 1899


@pytest.mark.parametrize(
    "start", [datetime(9999, 12, 31, 23, 0, tzinfo=MINUS_5), datetime(1, 1, 1, tzinfo=PLUS_14)]
)
def test_a_search_window_out_of_range_is_a_clear_error(start: datetime) -> None:
    with pytest.raises(InvalidRequest, match="between 1900-01-01 and 8999-12-31"):
        SearchQuery(
            bbox=BBox(-3, 51, -2, 52), available_from=start, available_until=datetime(2026, 3, 3, tzinfo=UTC)
        )
