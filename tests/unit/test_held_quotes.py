"""Held quotes (pure): whose they are, what they are for, until when, and once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chargeshare.domain.dynamic_pricing import PricingMode
from chargeshare.domain.errors import NotFound, QuoteExpired, QuoteMismatch, QuoteUsed
from chargeshare.domain.held_quotes import HeldQuote
from tests.conftest import T0

START = T0 + timedelta(hours=2)
AHEAD = HeldQuote(
    7,
    1,
    3,
    START,
    START + timedelta(minutes=60),
    False,
    42,
    PricingMode.DYNAMIC,
    T0,
    T0 + timedelta(minutes=10),
)
NOW = HeldQuote(
    8, 1, 3, T0, T0 + timedelta(minutes=60), True, 42, PricingMode.DYNAMIC, T0, T0 + timedelta(minutes=10)
)


def test_its_driver_may_book_its_charger_and_window_until_it_expires() -> None:
    AHEAD.check_use(1, 3, START, 60, T0 + timedelta(minutes=9, seconds=59))
    NOW.check_use(1, 3, None, 60, T0 + timedelta(minutes=5))


@pytest.mark.parametrize(
    ("quote", "driver", "charger", "starts_at", "minutes", "after", "error"),
    [
        (AHEAD, 2, 3, START, 60, 0, NotFound),  # someone else's: as if there were none
        (AHEAD, 1, 3, START, 60, 10, QuoteExpired),  # expired on the dot
        (AHEAD, 1, 4, START, 60, 0, QuoteMismatch),  # another charger
        (AHEAD, 1, 3, START + timedelta(minutes=15), 60, 0, QuoteMismatch),  # another start
        (AHEAD, 1, 3, START, 90, 0, QuoteMismatch),  # a longer window
        (AHEAD, 1, 3, None, 60, 0, QuoteMismatch),  # a quote ahead does not price "charge now"
        (NOW, 1, 3, T0, 60, 0, QuoteMismatch),  # nor a "charge now" quote a start given
    ],
)
def test_anything_else_is_refused_saying_why(
    quote: HeldQuote, driver: int, charger: int, starts_at: object, minutes: int, after: int, error: type
) -> None:
    with pytest.raises(error):
        quote.check_use(driver, charger, starts_at, minutes, T0 + timedelta(minutes=after))  # type: ignore[arg-type]


def test_a_used_quote_is_refused_before_anything_else() -> None:
    used = HeldQuote(**{**AHEAD.__dict__, "booking_id": 5})
    with pytest.raises(QuoteUsed):
        used.check_use(1, 3, START, 60, T0 + timedelta(hours=1))


def test_a_booking_fits_its_quote_when_its_driver_charger_and_window_are_the_quotes() -> None:
    end = START + timedelta(minutes=60)
    assert AHEAD.fits(1, 3, START, end)
    assert not AHEAD.fits(2, 3, START, end)
    assert not AHEAD.fits(1, 3, START + timedelta(minutes=1), end + timedelta(minutes=1))
    later = T0 + timedelta(minutes=4)
    assert NOW.fits(1, 3, later, later + timedelta(minutes=60))  # "now", any time it was held
    assert not NOW.fits(1, 3, T0 + timedelta(minutes=10), T0 + timedelta(minutes=70))
    assert NOW.fits(1, 3, later, later + timedelta(minutes=30))  # its session stopped early
    assert not NOW.fits(1, 3, later, later + timedelta(minutes=61))
