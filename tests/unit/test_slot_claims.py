"""Slot claims ahead of the database: the Lua scripts (on a real Redis and on the embedded fake) and
the in-process claims keep the same rules, checked here case by case and against a model."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeshare.adapters.redis_slot_claims import MemorySlotClaims, RedisSlotClaims
from chargeshare.services.ports import SlotClaim, SlotClaims
from tests.conftest import examples

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
PENDING_MS, PLACING_MS, HELD_MS = 30_000, 120_000, 60_000


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture(params=["memory", "fakeredis", pytest.param("redis", marks=pytest.mark.redis)])
def claims(request: pytest.FixtureRequest) -> Iterator[SlotClaims]:
    if request.param == "memory":
        yield MemorySlotClaims(pending_ms=PENDING_MS, placing_ms=PLACING_MS, held_ms=HELD_MS)
        return
    if request.param == "fakeredis":
        import fakeredis

        client: Any = fakeredis.FakeRedis()
    else:
        client = request.getfixturevalue("redis_client")
    yield RedisSlotClaims(
        client, "test-claims", pending_ms=PENDING_MS, placing_ms=PLACING_MS, held_ms=HELD_MS
    )


def claim(c: SlotClaims, start: float, end: float, now: float = -60, connector: int = 1) -> SlotClaim | None:
    return c.claim(7, connector, at(start), at(end), at(now))


def test_an_overlapping_period_is_refused_and_others_are_not(claims: SlotClaims) -> None:
    assert claim(claims, 0, 60) is not None
    assert claim(claims, 30, 90) is None
    assert claim(claims, -30, 1) is None
    assert claim(claims, 60, 120) is not None  # back to back: periods are half-open
    assert claim(claims, -30, 0) is not None
    assert claim(claims, 0, 60, connector=2) is not None  # another connector
    assert claims.claim(8, 1, at(0), at(60), at(-60)) is not None  # another charger


def test_a_released_claim_refuses_nothing(claims: SlotClaims) -> None:
    first = claim(claims, 0, 60)
    assert first is not None
    claims.release(first)
    assert claim(claims, 0, 60) is not None


def test_a_pending_claim_lapses_unless_confirmed(claims: SlotClaims) -> None:
    assert claim(claims, 0, 600, now=0) is not None
    assert claim(claims, 0, 600, now=0.4) is None
    assert claim(claims, 0, 600, now=0.6) is not None  # its holder never came back: 30 s


def test_a_confirmed_claim_holds_until_released_or_its_hold_lapses(claims: SlotClaims) -> None:
    booked = claim(claims, 0, 600, now=0)
    assert booked is not None
    claims.confirm(booked, 42, at(0))
    assert claim(claims, 0, 600, now=0.9) is None  # past the pending window: confirmed
    assert claim(claims, 0, 600, now=1.1) is not None  # a release missed: a minute at most
    other = claim(claims, 600, 700, now=2)
    assert other is not None
    claims.confirm(other, 43, at(2))
    assert claim(claims, 650, 660, now=2) is None
    claims.release_booking(7, 43)
    assert claim(claims, 650, 660, now=2) is not None


def test_a_claim_holds_through_its_hold_placement_then_as_confirmed(claims: SlotClaims) -> None:
    booked = claim(claims, 0, 600, now=0)
    assert booked is not None
    claims.placing(booked, at(0.25))  # booking written, card hold being asked for: 2 minutes
    assert claim(claims, 0, 600, now=1) is None  # past the pending window, still placing
    assert claim(claims, 0, 600, now=2.2) is None
    claims.confirm(booked, 42, at(2.2))
    assert claim(claims, 0, 600, now=3.1) is None  # confirmed: a minute from then
    assert claim(claims, 0, 600, now=3.3) is not None


def test_a_lapsed_pending_claim_is_not_revived_by_its_placement(claims: SlotClaims) -> None:
    slow = claim(claims, 0, 600, now=0)
    assert slow is not None
    claims.placing(slow, at(0.7))  # its 30 s were over: the database decides for it now
    assert claim(claims, 0, 600, now=0.7) is not None


def test_a_claim_ends_with_its_period(claims: SlotClaims) -> None:
    booked = claim(claims, 0, 30, now=0)
    assert booked is not None
    claims.confirm(booked, 1, at(0))
    assert claim(claims, 0, 30, now=0) is None
    assert claim(claims, -10, 40, now=30) is not None  # over: only the future part could clash


@settings(max_examples=examples(60), deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 20), st.integers(1, 10), st.booleans()),
        min_size=1,
        max_size=25,
    )
)
def test_claims_match_a_model_of_half_open_periods(steps: list[tuple[int, int, int, bool]]) -> None:
    """With time standing still, a claim is granted exactly when it overlaps no claim granted and
    not released on its connector, in both implementations."""
    import fakeredis

    implementations: list[SlotClaims] = [
        MemorySlotClaims(pending_ms=PENDING_MS, placing_ms=PLACING_MS, held_ms=HELD_MS),
        RedisSlotClaims(
            fakeredis.FakeRedis(), "model", pending_ms=PENDING_MS, placing_ms=PLACING_MS, held_ms=HELD_MS
        ),
    ]
    for c in implementations:
        held: dict[tuple[int, int, int], SlotClaim] = {}
        for connector, start, length, release in steps:
            end = start + length
            clashes = any(k[0] == connector and k[1] < end and k[2] > start for k in held)
            got = claim(c, start, end, connector=connector)
            assert (got is None) == clashes
            if got is not None:
                if release:
                    c.release(got)
                else:
                    held[(connector, start, end)] = got


def test_a_copy_of_the_owners_request_claims_nothing_and_is_not_refused(claims: SlotClaims) -> None:
    first = claims.claim(7, 1, at(0), at(60), at(-60), owner="4:key/with:odd chars")
    assert first is not None and first.member
    # The copy: let through to the database, holding no claim of its own.
    assert claims.claim(7, 1, at(0), at(60), at(-60), owner="4:key/with:odd chars") == SlotClaim(7, "")
    assert claims.claim(7, 1, at(0), at(60), at(-60), owner="5:key/with:odd chars") is None
    assert claims.claim(7, 1, at(0), at(60), at(-60)) is None
    other = claims.claim(7, 1, at(60), at(120), at(-60))
    assert other is not None
    # Overlapping the owner's claim and someone else's: refused.
    assert claims.claim(7, 1, at(30), at(90), at(-60), owner="4:key/with:odd chars") is None
    claims.confirm(first, 9, at(-60))
    assert claims.claim(7, 1, at(0), at(60), at(-59.5), owner="4:key/with:odd chars") == SlotClaim(7, "")
