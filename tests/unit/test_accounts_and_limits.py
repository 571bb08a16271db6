"""Pure rules behind the API: emails, token buckets, the quarterly income statement; and access
tokens (forged, tampered, wrong algorithm, lapsed) checked against the injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.domain.accounts import Principal, Role, normalise_email
from chargeshare.domain.errors import InvalidRequest, Unauthorized
from chargeshare.domain.rate_limit import Limit, retry_after_header, take
from chargeshare.domain.statement import Earning, year_statement
from chargeshare.services.auth import AuthService
from chargeshare.services.clock import ManualClock
from chargeshare.services.passwords import password_hasher
from chargeshare.services.records import AccountRecord

T = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_emails_are_normalised_or_refused() -> None:
    assert normalise_email("  Ann@Example.COM ") == "ann@example.com"
    for bad in ("", "ann", "ann@", "@example.com", "ann@localhost", "a nn@example.com"):
        with pytest.raises(InvalidRequest):
            normalise_email(bad)


def test_a_bucket_allows_its_burst_then_says_how_long_to_wait() -> None:
    limit = Limit(burst=3, per_minute=6)  # one token back every 10 s
    bucket = None
    for _ in range(3):
        bucket, wait = take(limit, bucket, T)
        assert wait == 0
    bucket, wait = take(limit, bucket, T)
    assert wait == pytest.approx(10.0)
    _, wait = take(limit, bucket, T + timedelta(seconds=4))
    assert wait == pytest.approx(6.0)
    _, wait = take(limit, bucket, T + timedelta(seconds=10))
    assert wait == 0
    _, wait = take(limit, bucket, T - timedelta(hours=1))  # a clock stepping back refills nothing
    assert wait == pytest.approx(10.0)
    assert retry_after_header(0.2) == "1" and retry_after_header(6.01) == "7"


@given(st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=40))
def test_a_bucket_never_admits_more_than_burst_plus_refill(gaps: list[int]) -> None:
    limit = Limit(burst=5, per_minute=2)
    bucket, now, admitted = None, T, 0
    for gap in gaps:
        now += timedelta(seconds=gap)
        bucket, wait = take(limit, bucket, now)
        admitted += wait == 0
    elapsed_min = (now - T).total_seconds() / 60
    assert admitted <= limit.burst + elapsed_min * limit.per_minute + 1e-9


earning = st.builds(
    Earning,
    booking_id=st.integers(1, 30),
    at=st.datetimes(datetime(2025, 6, 1), datetime(2027, 6, 1), timezones=st.just(UTC)),
    consideration=st.integers(0, 10_000),
    host_share=st.integers(0, 8_500),
)


@given(st.lists(earning, max_size=40))
@pytest.mark.slow
def test_statement_quarters_add_up_to_the_year(earnings: list[Earning]) -> None:
    s = year_statement(7, 2026, earnings)
    in_year = [e for e in earnings if e.at.year == 2026]
    assert [q.quarter for q in s.quarters] == [1, 2, 3, 4]
    assert s.gross_consideration == sum(e.consideration for e in in_year)
    assert s.net_paid == sum(e.host_share for e in in_year)
    assert s.fees_withheld == s.gross_consideration - s.net_paid
    # One activity per paid booking, however many captures it took.
    assert s.activities == len({e.booking_id for e in in_year if e.consideration > 0})


def test_a_booking_paid_across_quarters_is_one_activity_in_its_first() -> None:
    # UK quarters: 31 March 2026 is on BST, so local midnight is 23:00 UTC.
    a = Earning(1, datetime(2026, 3, 31, 22, 59, tzinfo=UTC), 1_000, 850)
    b = Earning(1, datetime(2026, 3, 31, 23, 1, tzinfo=UTC), 200, 170)  # a top-up after midnight
    q = year_statement(1, 2026, [b, a]).quarters
    assert [(x.activities, x.gross_consideration, x.fees_withheld) for x in q[:2]] == [
        (1, 1_000, 150),
        (0, 200, 30),
    ]
    with pytest.raises(InvalidRequest):
        year_statement(1, 1999, [])


class _Store:
    """Tokens need no store; the service is given one for sign-up and login only."""


def _auth(clock: ManualClock, secret: str = "s" * 40) -> AuthService:
    return AuthService(_Store(), clock, secret=secret, token_minutes=15, hasher=password_hasher("fast"))  # type: ignore[arg-type]


ACCOUNT = AccountRecord(3, "d@example.com", "-", "driver", driver_id=9, host_id=None, created_at=T)


def test_tokens_carry_the_principal_until_they_lapse() -> None:
    clock = ManualClock(T)
    auth = _auth(clock)
    issued = auth.issue(ACCOUNT)
    assert issued.expires_at == T + timedelta(minutes=15)
    assert auth.verify(issued.token) == Principal(3, Role.DRIVER, driver_id=9)
    clock.advance(15 * 60 - 1)
    auth.verify(issued.token)
    clock.advance(1)
    with pytest.raises(Unauthorized, match="expired"):
        auth.verify(issued.token)


def test_forged_and_tampered_tokens_are_refused() -> None:
    clock = ManualClock(T)
    auth = _auth(clock)
    good = auth.issue(ACCOUNT).token
    claims = jwt.decode(good, "s" * 40, algorithms=["HS256"], options={"verify_exp": False})
    forged = [
        _auth(clock, "t" * 40).issue(ACCOUNT).token,  # signed with another secret
        jwt.encode({**claims, "role": "admin"}, "t" * 40, algorithm="HS256"),
        jwt.encode({**claims, "role": "admin"}, "", algorithm="none"),  # "alg: none"
        jwt.encode({k: v for k, v in claims.items() if k != "exp"}, "s" * 40, algorithm="HS256"),
        jwt.encode({**claims, "role": "superuser"}, "s" * 40, algorithm="HS256"),
        jwt.encode({**claims, "driver_id": "9"}, "s" * 40, algorithm="HS256"),
        good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "",
        "a.b.c",
    ]
    for token in forged:
        with pytest.raises(Unauthorized):
            auth.verify(token)
    with pytest.raises(ValueError):
        _auth(clock, "short")
