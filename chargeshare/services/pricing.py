"""Prices per kWh: a host's settings, and the quote for a connector over a window.

A quote reads the host's settings, the charger's listed price, how booked the chargers around it are
over the window and the grid's signals at its start, and applies the pure rule
(`domain.dynamic_pricing`). A booking takes its quote in the unit of work that makes it, and its
session is billed at it.

A quote held for a driver and never used is deleted by the housekeeping sweep once it expired longer
ago than the retention; one a booking was made with is kept with the booking, as its quoted price is,
so `capture_matches_quote` can hold the booking to it for as long as the booking is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from chargeshare.domain.dynamic_pricing import HostPricing, Price, PriceInputs, PricingMode, price
from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.held_quotes import DEFAULT_HOLD, DEFAULT_RETENTION, HeldQuote
from chargeshare.domain.search import MAX_LIMIT, SearchQuery
from chargeshare.services.clock import Clock
from chargeshare.services.ports import GridSignals, Store, UnitOfWork
from chargeshare.services.records import ChargerView

# The chargers a driver would weigh against this one: those within a short drive.
LOCAL_RADIUS_M = 3_000
# Expired quotes deleted per unit of work, and units of work per sweep: each batch holds its rows'
# locks briefly, and a backlog is worked off over several sweeps rather than in one long one.
DELETE_BATCH = 500
DELETE_BATCHES = 20


@dataclass(frozen=True)
class Quote:
    charger_id: int
    starts_at: datetime
    ends_at: datetime
    price: Price
    utilisation_permille: int


class PricingService:
    def __init__(
        self,
        store: Store,
        signals: GridSignals,
        clock: Clock,
        hold_for: timedelta = DEFAULT_HOLD,
        retention: timedelta = DEFAULT_RETENTION,
    ) -> None:
        self.store, self.signals, self.clock = store, signals, clock
        self.hold_for = hold_for  # how long a quote issued to a driver is held for them
        self.retention = retention  # how long an unused quote is kept once it expired

    def settings(self, host_id: int) -> HostPricing | None:
        with self.store.reading() as tx:
            tx.accounts.host(host_id)
            return tx.pricing.settings(host_id)

    def set_settings(self, host_id: int, settings: HostPricing) -> None:
        with self.store.transaction() as tx:
            tx.pricing.save(host_id, settings, self.clock.now())

    def quote(self, charger_id: int, starts_at: datetime | None, minutes: int) -> Quote:
        """What booking the charger from `starts_at` (None: now) for `minutes` would cost per kWh now."""
        start, end = self._window(starts_at, minutes)
        with self.store.reading() as tx:
            return self.quote_in(tx, tx.chargers.by_id(charger_id), start, end)

    def hold(
        self, driver_id: int, charger_id: int, starts_at: datetime | None, minutes: int
    ) -> tuple[Quote, HeldQuote]:
        """The quote, held for the driver until `hold_for` from now: a booking naming it, of this
        charger and window, is made at its price whatever the price has become meanwhile."""
        start, end = self._window(starts_at, minutes)
        now = self.clock.now()
        with self.store.transaction() as tx:
            tx.accounts.driver(driver_id)
            quote = self.quote_in(tx, tx.chargers.by_id(charger_id), start, end)
            held = tx.pricing.hold(
                HeldQuote(
                    0,
                    driver_id,
                    charger_id,
                    start,
                    end,
                    starts_at is None,
                    quote.price.per_kwh,
                    quote.price.mode,
                    now,
                    now + self.hold_for,
                )
            )
        return quote, held

    def delete_expired_quotes(self, batch: int = DELETE_BATCH, batches: int = DELETE_BATCHES) -> int:
        """Delete the quotes no booking used that expired longer ago than the retention, `batch` to
        a unit of work, until a batch comes up short or `batches` ran; how many were deleted."""
        cut_off = self.clock.now() - self.retention
        deleted = 0
        for _ in range(batches):
            with self.store.transaction() as tx:
                done = tx.pricing.delete_expired_held(cut_off, batch)
            deleted += done
            if done < batch:
                break
        return deleted

    def _window(self, starts_at: datetime | None, minutes: int) -> tuple[datetime, datetime]:
        if minutes <= 0:
            raise InvalidRequest("minutes must be positive")
        if starts_at is not None and starts_at.utcoffset() is None:
            raise InvalidRequest("starts_at must say its time zone")  # a guess would be an hour out
        start = starts_at or self.clock.now()
        return start, start + timedelta(minutes=minutes)

    def quote_in(self, tx: UnitOfWork, charger: ChargerView, starts_at: datetime, ends_at: datetime) -> Quote:
        """The quote as read in `tx`: a booking takes it in the unit of work that makes it."""
        settings = tx.pricing.settings(charger.host_id)
        if settings is None or settings.mode is PricingMode.FLAT:  # the listed price: nothing to read
            return Quote(
                charger.charger_id, starts_at, ends_at, Price(charger.price_per_kwh, PricingMode.FLAT), 0
            )
        utilisation = _utilisation(tx, charger, starts_at, ends_at)
        inputs = PriceInputs(charger.price_per_kwh, starts_at, utilisation, self.signals.reading(starts_at))
        return Quote(charger.charger_id, starts_at, ends_at, price(settings, inputs), utilisation)


def _utilisation(tx: UnitOfWork, charger: ChargerView, starts_at: datetime, ends_at: datetime) -> int:
    """Permille of the chargers within LOCAL_RADIUS_M with no connector free over the window."""
    near = SearchQuery(centre=charger.location, radius_m=LOCAL_RADIUS_M, limit=MAX_LIMIT)
    nearby = len(tx.chargers.search(near))
    free = len(tx.chargers.search(replace(near, available_from=starts_at, available_until=ends_at)))
    if nearby == 0:
        return 0
    return max(0, min(1_000, (nearby - free) * 1_000 // nearby))
