"""Held quotes: the price a driver was shown, kept for them for a while.

A quote issued to a driver is bound to that driver, one charger and one window, and lasts until it
expires. A booking naming it is made at exactly its price, whatever the dynamic price has become, or
refused: a quote is used by one booking at most. A "charge now" quote holds its price for a booking
made now, any time before it expires, of the same length. One no booking used is kept for a while
after it expires (`DEFAULT_RETENTION`), then deleted: a booking naming it then finds no such quote.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from chargeshare.domain.dynamic_pricing import PricingMode
from chargeshare.domain.errors import NotFound, QuoteExpired, QuoteMismatch, QuoteUsed
from chargeshare.domain.money import Pence

DEFAULT_HOLD = timedelta(minutes=10)
# Kept this long after expiry, a booking naming it is told it expired rather than that it never was.
DEFAULT_RETENTION = timedelta(days=1)


@dataclass(frozen=True)
class HeldQuote:
    quote_id: int
    driver_id: int
    charger_id: int
    starts_at: datetime  # for a "charge now" quote, when it was quoted
    ends_at: datetime
    immediate: bool  # quoted to "charge now": held for a booking made now, until it expires
    per_kwh: Pence
    mode: PricingMode
    quoted_at: datetime
    expires_at: datetime
    booking_id: int | None = None  # the booking that used it

    @property
    def minutes(self) -> int:
        return int((self.ends_at - self.starts_at).total_seconds() // 60)

    def check_use(
        self, driver_id: int, charger_id: int, starts_at: datetime | None, minutes: int, now: datetime
    ) -> None:
        """May this driver book `charger_id` from `starts_at` (None: now) for `minutes` with it, now?
        Someone else's quote is NotFound, as if it did not exist."""
        if self.driver_id != driver_id:
            raise NotFound(f"no quote {self.quote_id} for you")
        if self.booking_id is not None:
            raise QuoteUsed(f"quote {self.quote_id} was used by a booking already; ask for a new quote")
        if now >= self.expires_at:
            raise QuoteExpired(
                f"quote {self.quote_id} expired at {self.expires_at.isoformat()}; ask for a new quote"
            )
        if charger_id != self.charger_id:
            raise QuoteMismatch(f"quote {self.quote_id} is for charger {self.charger_id}, not {charger_id}")
        if self.immediate != (starts_at is None):
            said = "to charge now" if self.immediate else f"from {self.starts_at.isoformat()}"
            raise QuoteMismatch(f"quote {self.quote_id} was given {said}: book the same start")
        if starts_at is not None and starts_at != self.starts_at:
            raise QuoteMismatch(f"quote {self.quote_id} is for a start at {self.starts_at.isoformat()}")
        if minutes != self.minutes:
            raise QuoteMismatch(f"quote {self.quote_id} is for {self.minutes} minutes, not {minutes}")

    def fits(self, driver_id: int, charger_id: int, starts_at: datetime, ends_at: datetime) -> bool:
        """Does the booking made with it (as stored) keep to the quote's driver, charger and window?
        Its end may come sooner than the quote's: a stopped session frees the rest of its period."""
        if (driver_id, charger_id) != (self.driver_id, self.charger_id):
            return False
        if ends_at - starts_at > self.ends_at - self.starts_at:
            return False
        if self.immediate:
            return self.quoted_at <= starts_at < self.expires_at
        return starts_at == self.starts_at
