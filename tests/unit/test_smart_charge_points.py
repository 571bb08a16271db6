"""The smart charging regulations as pure rules: peak hours in UK local time, the delay's draw and
what suppresses it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.smart_charge_points import (
    DELAY_CAPABLE_MAX_S,
    SmartSettings,
    Suppressed,
    blocked_edges_after,
    charging_blocked,
    delay_suppressed,
    draw_delay,
    in_peak,
    peak_edges_after,
    peak_periods,
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_peak_hours_are_weekday_mornings_and_evenings_in_winter() -> None:
    # Monday 2 March 2026, GMT: local time is UTC.
    assert peak_periods(utc(2026, 3, 2), utc(2026, 3, 3)) == [
        (utc(2026, 3, 2, 8), utc(2026, 3, 2, 11)),
        (utc(2026, 3, 2, 16), utc(2026, 3, 2, 22)),
    ]
    assert in_peak(utc(2026, 3, 2, 8)) and not in_peak(utc(2026, 3, 2, 11))  # start in, end out
    assert not in_peak(utc(2026, 3, 2, 7, 59, 59)) and in_peak(utc(2026, 3, 2, 21, 59, 59))


def test_in_summer_time_peak_hours_are_an_hour_earlier_in_utc() -> None:
    # Monday 1 June 2026, BST (UTC+1): 08:00 local is 07:00 UTC.
    assert peak_periods(utc(2026, 6, 1), utc(2026, 6, 2)) == [
        (utc(2026, 6, 1, 7), utc(2026, 6, 1, 10)),
        (utc(2026, 6, 1, 15), utc(2026, 6, 1, 21)),
    ]


def test_the_clocks_changing_moves_the_windows_across_the_weekend() -> None:
    # The clocks went forward early on Sunday 29 March 2026: Friday in GMT, Monday in BST.
    friday, monday = utc(2026, 3, 27), utc(2026, 3, 30)
    assert peak_periods(friday, friday + timedelta(days=1))[0] == (utc(2026, 3, 27, 8), utc(2026, 3, 27, 11))
    assert peak_periods(monday, monday + timedelta(days=1))[0] == (utc(2026, 3, 30, 7), utc(2026, 3, 30, 10))
    # ... and back on Sunday 25 October 2026.
    evening = peak_periods(utc(2026, 10, 26), utc(2026, 10, 27))[1]
    assert evening == (utc(2026, 10, 26, 16), utc(2026, 10, 26, 22))


def test_weekends_have_no_peak_hours() -> None:
    saturday = utc(2026, 3, 7)
    assert peak_periods(saturday, saturday + timedelta(days=2)) == []
    assert not in_peak(utc(2026, 3, 7, 17))


def test_the_next_edges_skip_the_weekend() -> None:
    friday_night = utc(2026, 3, 6, 22)
    assert peak_edges_after(friday_night)[0] == utc(2026, 3, 9, 8)


@given(st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)))
def test_in_peak_agrees_with_the_local_clock(at: datetime) -> None:
    local = at.astimezone(ZoneInfo("Europe/London"))
    minute = local.hour * 60 + local.minute
    expected = local.weekday() < 5 and (8 * 60 <= minute < 11 * 60 or 16 * 60 <= minute < 22 * 60)
    assert in_peak(at) == expected


@given(
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
    st.integers(min_value=0, max_value=DELAY_CAPABLE_MAX_S),
)
def test_default_hours_end_the_spread_before_each_peak_and_cover_it(at: datetime, spread_s: int) -> None:
    # Blocked throughout peak hours, and for `spread_s` before each window (never after it).
    if in_peak(at):
        assert charging_blocked(at, spread_s)
    if charging_blocked(at, spread_s):
        assert in_peak(at) or in_peak(at + timedelta(seconds=spread_s))


def test_blocked_edges_include_the_spread_start_and_the_peak_edges() -> None:
    edges = blocked_edges_after(utc(2026, 3, 2, 12), 600)
    assert edges[:3] == [utc(2026, 3, 2, 15, 50), utc(2026, 3, 2, 16), utc(2026, 3, 2, 22)]


@given(st.integers(min_value=0, max_value=DELAY_CAPABLE_MAX_S), st.integers())
def test_a_delay_is_whole_seconds_within_zero_and_the_maximum(max_s: int, seed: int) -> None:
    assert 0 <= draw_delay(random.Random(seed), max_s) <= max_s


def test_the_same_seed_draws_the_same_delays() -> None:
    first = [draw_delay(random.Random("7:CP-1:delay"), 600) for _ in range(3)]
    assert first == [draw_delay(random.Random("7:CP-1:delay"), 600) for _ in range(3)]


def test_draws_cover_the_whole_range_uniformly() -> None:
    rng = random.Random(1)
    draws = [draw_delay(rng, 600) for _ in range(6_000)]
    per_minute = [sum(1 for d in draws if 60 * m <= d < 60 * (m + 1)) for m in range(10)]
    assert min(draws) == 0 and max(draws) == 600
    assert all(500 <= n <= 700 for n in per_minute), per_minute  # about 600 each


def test_the_maximum_is_bounded_by_what_a_charger_must_be_capable_of() -> None:
    assert SmartSettings(randomised_delay_max_s=1_800).randomised_delay_max_s == 1_800
    for wrong in (-1, 1_801):
        with pytest.raises(InvalidRequest, match="0 to 1800 seconds"):
            SmartSettings(randomised_delay_max_s=wrong)


@pytest.mark.parametrize(
    ("settings", "end_user", "why"),
    [
        (SmartSettings(), False, None),
        (SmartSettings(), True, Suppressed.END_USER),
        (SmartSettings(randomised_delay_override=True), False, Suppressed.OWNER),
        (SmartSettings(demand_side_response=True), False, Suppressed.DSR),
        (SmartSettings(randomised_delay_override=True, demand_side_response=True), True, Suppressed.END_USER),
    ],
)
def test_what_suppresses_the_delay(settings: SmartSettings, end_user: bool, why: Suppressed | None) -> None:
    assert delay_suppressed(settings, end_user_override=end_user) == why
