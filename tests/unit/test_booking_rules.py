from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.domain.booking import (
    FINAL_STATES,
    LEAST_PERIOD,
    TRANSITIONS,
    BookingEvent,
    BookingStatus,
    check_period,
    next_status,
    overlaps,
    walk_in_period,
)
from chargeshare.domain.errors import InvalidRequest, InvalidTransition

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@given(st.sampled_from(BookingStatus), st.sampled_from(BookingEvent))
def test_every_pair_is_listed_or_refused(state: BookingStatus, event: BookingEvent) -> None:
    if (state, event) in TRANSITIONS:
        assert next_status(state, event) == TRANSITIONS[(state, event)]
    else:
        with pytest.raises(InvalidTransition):
            next_status(state, event)


def test_final_states_have_no_way_out() -> None:
    assert not [k for k in TRANSITIONS if k[0] in FINAL_STATES]


def test_happy_path() -> None:
    s = BookingStatus.REQUESTED
    for e in (BookingEvent.HOLD_PLACED, BookingEvent.SESSION_STARTED, BookingEvent.SESSION_STOPPED):
        s = next_status(s, e)
    assert s is BookingStatus.COMPLETED


minutes = st.integers(0, 10_000)


@given(minutes, st.integers(1, 500), minutes, st.integers(1, 500))
def test_overlap_is_symmetric_and_half_open(a: int, al: int, b: int, bl: int) -> None:
    a0, a1 = T0 + timedelta(minutes=a), T0 + timedelta(minutes=a + al)
    b0, b1 = T0 + timedelta(minutes=b), T0 + timedelta(minutes=b + bl)
    assert overlaps(a0, a1, b0, b1) == overlaps(b0, b1, a0, a1)
    brute = bool(set(range(a, a + al)) & set(range(b, b + bl)))
    assert overlaps(a0, a1, b0, b1) == brute


def test_period_checks() -> None:
    with pytest.raises(InvalidRequest):
        check_period(T0, T0)
    with pytest.raises(InvalidRequest):
        check_period(T0.replace(tzinfo=None), T0.replace(tzinfo=None) + timedelta(1))


# ---- a walk-in's period ---------------------------------------------------------------------------
H = timedelta(hours=1)
FOUR_H = 4 * H


def hours(a: float, b: float) -> tuple[datetime, datetime]:
    return T0 + a * H, T0 + b * H


def test_a_walk_in_holds_its_time_from_its_own_start_where_it_is_free() -> None:
    for replayed in (False, True):
        assert walk_in_period(T0, FOUR_H, [], replayed=replayed) == hours(0, 4)
        # Bookings that ended before, or begin after, its time are no matter.
        assert walk_in_period(T0, FOUR_H, [hours(-2, 0), hours(4, 5)], replayed=replayed) == hours(0, 4)


def test_a_walk_in_starting_now_is_refused_where_a_booking_overlaps_its_time() -> None:
    assert walk_in_period(T0, FOUR_H, [hours(3, 4)], replayed=False) is None
    assert walk_in_period(T0, FOUR_H, [hours(-1, 0.5)], replayed=False) is None


def test_a_replayed_walk_in_keeps_to_the_free_time_and_is_never_refused() -> None:
    # Up to the next booking.
    assert walk_in_period(T0, FOUR_H, [hours(3, 4), hours(5, 6)], replayed=True) == hours(0, 3)
    # A booking (or several back to back) holding its start: from where they end, up to the next.
    assert walk_in_period(T0, FOUR_H, [hours(-1, 0.5), hours(0.5, 1), hours(2, 3)], replayed=True) == hours(
        1, 2
    )
    # Held beyond its whole time: the least period, after what holds it.
    start, end = walk_in_period(T0, FOUR_H, [hours(-1, 6)], replayed=True) or (None, None)
    assert (start, end) == (T0 + 6 * H, T0 + 6 * H + LEAST_PERIOD)


@given(
    st.lists(st.tuples(st.integers(-600, 600), st.integers(1, 300)), max_size=6),
    st.integers(1, 300),
)
def test_a_replayed_walk_ins_period_overlaps_no_booking(raw: list[tuple[int, int]], length: int) -> None:
    taken: list[tuple[datetime, datetime]] = []
    for offset, minutes in raw:  # live bookings never overlap one another
        period = (T0 + timedelta(minutes=offset), T0 + timedelta(minutes=offset + minutes))
        if not any(overlaps(*period, *other) for other in taken):
            taken.append(period)
    got = walk_in_period(T0, timedelta(minutes=length), taken, replayed=True)
    assert got is not None
    start, end = got
    assert T0 <= start < end
    assert not any(overlaps(start, end, *other) for other in taken)
