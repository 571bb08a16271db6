from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.domain.availability import WeeklyWindow, covers, open_intervals
from chargeshare.domain.credentials import basic_auth_header, hash_password, parse_basic_auth, verify_password
from chargeshare.domain.errors import InvalidRequest


def test_password_hash_round_trip_and_refusals() -> None:
    stored = hash_password("a-long-enough-secret", b"salt-salt-salt-1")
    assert verify_password("a-long-enough-secret", stored)
    assert not verify_password("a-long-enough-secreT", stored)
    assert not verify_password("x", "not-a-hash")
    assert hash_password("a-long-enough-secret", b"other-salt-00000") != stored
    with pytest.raises(InvalidRequest):
        hash_password("short", b"s")


@given(
    st.text(alphabet=st.characters(blacklist_characters=":", blacklist_categories=["Cs"]), min_size=1),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"])),
)
def test_basic_auth_round_trip(user: str, password: str) -> None:
    assert parse_basic_auth(basic_auth_header(user, password)) == (user, password)


@pytest.mark.parametrize("header", [None, "", "Bearer x", "Basic", "Basic ***", "Basic " + "\u00e9"])
def test_bad_basic_auth_is_none(header: str | None) -> None:
    assert parse_basic_auth(header) is None


MON = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday in winter (UK time = UTC)
SUMMER_MON = datetime(2026, 7, 6, tzinfo=UTC)  # a Monday in summer (UK time = UTC+1)


def test_calendar_follows_uk_local_time_through_the_seasons() -> None:
    weekdays_8_to_6 = [WeeklyWindow(d, 8 * 60, 18 * 60) for d in range(5)]
    assert covers(weekdays_8_to_6, MON + timedelta(hours=8), MON + timedelta(hours=18))
    assert not covers(weekdays_8_to_6, SUMMER_MON + timedelta(hours=8), SUMMER_MON + timedelta(hours=18))
    assert covers(weekdays_8_to_6, SUMMER_MON + timedelta(hours=7), SUMMER_MON + timedelta(hours=17))
    saturday = MON + timedelta(days=5, hours=10)
    assert not covers(weekdays_8_to_6, saturday, saturday + timedelta(hours=1))
    assert covers([], saturday, saturday + timedelta(days=3))  # no calendar: always open


def test_windows_across_midnight_merge() -> None:
    overnight = [WeeklyWindow(0, 22 * 60, 1440), WeeklyWindow(1, 0, 6 * 60)]
    assert open_intervals(overnight, MON, MON + timedelta(days=2)) == [
        (MON + timedelta(hours=22), MON + timedelta(days=1, hours=6))
    ]
    assert covers(overnight, MON + timedelta(hours=23), MON + timedelta(days=1, hours=5))


@pytest.mark.parametrize(("day", "start", "end"), [(7, 0, 60), (0, 60, 60), (0, -1, 60), (0, 0, 1441)])
def test_bad_windows_are_refused(day: int, start: int, end: int) -> None:
    with pytest.raises(InvalidRequest):
        WeeklyWindow(day, start, end)
