from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.domain.booking import (
    FINAL_STATES,
    TRANSITIONS,
    BookingEvent,
    BookingStatus,
    check_period,
    next_status,
    overlaps,
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
