"""The simulated house's load: within its bounds, the same for the same seed, changing only where
it says it may, and shaped like a UK home's day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from statistics import mean

from hypothesis import given
from hypothesis import strategies as st

from simulators.house_load import BASE_MIN_W, MAX_W, QUARTER, UK, HouseProfile

instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
houses = st.builds(HouseProfile, st.integers(0, 2**32), st.integers(0, 10_000))


@given(houses, instants)
def test_a_house_draws_between_its_base_and_the_most_a_house_draws(house: HouseProfile, at: datetime) -> None:
    assert BASE_MIN_W <= house.load_w(at) <= MAX_W


@given(st.integers(0, 2**32), st.integers(0, 10_000), instants)
def test_the_same_house_draws_the_same_in_every_run(seed: int, number: int, at: datetime) -> None:
    assert HouseProfile(seed, number).load_w(at) == HouseProfile(seed, number).load_w(at)


@given(houses, instants, st.floats(0, 1))
def test_the_load_holds_until_its_next_change(house: HouseProfile, at: datetime, part: float) -> None:
    change = house.next_change(at)
    assert at < change <= at + QUARTER and change.microsecond == 0
    between = at + (change - at) * part
    if between < change:
        assert house.load_w(between) == house.load_w(at)
    assert house.load_w(change - timedelta(microseconds=1)) == house.load_w(at)


def _by_uk_hour(hours: range) -> list[int]:
    """Twenty houses' load each minute in those UK hours of a winter and a summer week."""
    loads = []
    for week in (datetime(2026, 1, 12, tzinfo=UK), datetime(2026, 7, 13, tzinfo=UK)):
        for day in range(7):
            for hour in hours:
                for minute in range(0, 60, 5):
                    at = (week + timedelta(days=day, hours=hour, minutes=minute)).astimezone(UTC)
                    loads += [HouseProfile(7, n).load_w(at) for n in range(20)]
    return loads


def test_the_evening_peak_is_the_day_s_highest_on_the_uk_clock() -> None:
    night, morning, day = _by_uk_hour(range(1, 5)), _by_uk_hour(range(7, 9)), _by_uk_hour(range(10, 16))
    evening = _by_uk_hour(range(17, 20))
    assert mean(evening) > 2 * mean(morning) and mean(morning) > mean(day) > mean(night)
    assert max(evening) > 5_000  # a kettle on with the oven
