"""The back-off for commands a charger refuses (chargeshare/domain/command_backoff.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.domain.command_backoff import Backoff, Refusals
from chargeshare.domain.errors import InvalidRequest

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

backoffs = st.builds(
    lambda first, extra, limit: Backoff(first, first + extra, limit),
    st.integers(1, 3600),
    st.integers(0, 86_400),
    st.integers(1, 40),
)


@given(backoffs, st.integers(1, 200))
def test_delays_never_shrink_and_never_pass_the_cap(b: Backoff, n: int) -> None:
    assert b.first_s <= b.delay_s(n) <= b.cap_s
    assert b.delay_s(n) <= b.delay_s(n + 1)


@given(backoffs)
def test_the_first_delay_is_the_first_and_doubling_reaches_the_cap(b: Backoff) -> None:
    assert b.delay_s(1) == b.first_s
    assert b.delay_s(2) == min(b.cap_s, 2 * b.first_s)
    assert b.delay_s(10_000) == b.cap_s


@given(backoffs)
def test_refusals_count_up_wait_and_stop_at_the_limit(b: Backoff) -> None:
    state: Refusals | None = None
    now = T0
    for n in range(1, b.limit + 1):
        state = b.refused(state, now)
        assert state.count == n and state.last_at == now
        if n < b.limit:
            assert state.retry_at == now + timedelta(seconds=b.delay_s(n))
            assert not state.given_up
            assert not state.due(now) and state.due(state.retry_at)
            now = state.retry_at
        else:
            assert state.given_up and state.retry_at is None
            assert not state.due(now + timedelta(days=365))


def test_a_back_off_that_cannot_work_is_refused() -> None:
    for first, cap, limit in ((0, 10, 3), (10, 5, 3), (10, 20, 0)):
        with pytest.raises(InvalidRequest):
            Backoff(first, cap, limit)
    with pytest.raises(InvalidRequest):
        Backoff().delay_s(0)


@given(backoffs, st.integers(1, 60))
def test_the_state_after_a_count_is_the_state_after_as_many_refusals(b: Backoff, n: int) -> None:
    state: Refusals | None = None
    for _ in range(n):
        state = b.refused(state, T0)
    assert b.after(n, T0) == state
