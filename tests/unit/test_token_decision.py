"""The authorisation decision, as a table and over every situation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.tokens import (
    Basis,
    IdToken,
    Situation,
    TokenStatus,
    TokenType,
    Verdict,
    check_token,
    decide,
)

A, B, E, INV = TokenStatus.ACCEPTED, TokenStatus.BLOCKED, TokenStatus.EXPIRED, TokenStatus.INVALID
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

TABLE = [
    # token, booked here, walk-in, master pass, starting -> verdict
    (None, False, False, False, False, Verdict(INV)),
    (None, True, True, False, True, Verdict(INV)),
    (A, True, False, False, False, Verdict(A, Basis.BOOKING)),
    (A, True, True, False, True, Verdict(A, Basis.BOOKING)),
    (A, False, True, False, True, Verdict(A, Basis.WALK_IN)),
    (A, False, False, False, False, Verdict(B)),
    (A, False, False, False, True, Verdict(B)),
    (B, True, True, False, True, Verdict(B)),
    (E, True, False, False, False, Verdict(E)),
    (E, False, True, False, True, Verdict(E)),
    (INV, True, True, False, False, Verdict(INV)),
    (A, False, False, True, False, Verdict(A, Basis.MASTER_PASS)),
    (A, True, True, True, True, Verdict(B)),
    (B, False, False, True, False, Verdict(B)),
]


@pytest.mark.parametrize(("token", "booked", "walk_in", "master", "starting", "want"), TABLE)
def test_the_decision_table(
    token: TokenStatus | None, booked: bool, walk_in: bool, master: bool, starting: bool, want: Verdict
) -> None:
    assert decide(Situation(token, booked, walk_in, master, starting)) == want


@given(
    st.none() | st.sampled_from(TokenStatus),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_every_situation(
    token: TokenStatus | None, booked: bool, walk_in: bool, master: bool, starting: bool
) -> None:
    v = decide(Situation(token, booked, walk_in, master, starting))
    # A token's own refusal always wins, and an unknown one is Invalid whatever else holds.
    if token is None:
        assert v == Verdict(INV)
    elif token is not A:
        assert v == Verdict(token)
    # Accepted always says why; nothing else does.
    assert (v.basis is not None) == v.accepted
    # A start is let through only on a booking or by walk-in, and never for a master pass.
    if starting and v.accepted:
        assert v.basis in (Basis.BOOKING, Basis.WALK_IN)
        assert not master
    # Without a booking or walk-in, only a master pass's Authorize is Accepted.
    if not booked and not walk_in:
        assert v.accepted == (token is A and master and not starting)


def token(status: TokenStatus, expires_at: datetime | None) -> IdToken:
    return IdToken(1, 1, "CARD", TokenType.ISO14443, status, expires_at, None, False, T0)


def test_an_accepted_token_expires_at_its_expiry_on_the_clock_given() -> None:
    card = token(A, T0 + timedelta(hours=1))
    assert card.status_at(T0) is A
    assert card.status_at(T0 + timedelta(hours=1) - timedelta(microseconds=1)) is A
    assert card.status_at(T0 + timedelta(hours=1)) is E
    assert token(A, None).status_at(T0 + timedelta(days=10_000)) is A
    # A blocked card stays blocked after its expiry: the operator's word is the stronger.
    assert token(B, T0).status_at(T0 + timedelta(days=1)) is B


@pytest.mark.parametrize(
    ("value", "group", "expires"),
    [
        ("", None, None),
        ("X" * 256, None, None),  # beyond OCPP 2.1's 255
        (" CARD", None, None),
        ("CA\x00RD", None, None),
        ("CARD", "G" * 21, None),
        ("CARD", None, datetime(2026, 1, 1)),
    ],
)
def test_what_no_charger_could_be_told_is_refused(
    value: str, group: str | None, expires: datetime | None
) -> None:
    with pytest.raises(InvalidRequest):
        check_token(value, group, expires)


def test_a_twenty_character_token_with_a_group_is_fine() -> None:
    check_token("X" * 20, "FLEET", T0)


@pytest.mark.parametrize("length", [21, 36, 255])
def test_a_token_as_long_as_a_later_version_allows_is_fine(length: int) -> None:
    """OCPP 2.0.1's idToken is up to 36 characters, 2.1's 255: such cards are kept; only 1.6
    chargers, whose idTag is 20, can never present them."""
    check_token("X" * length, "G" * 20, None)
