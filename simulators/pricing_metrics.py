"""The run summary's `pricing` measures: the prices bookings were quoted (and so charged), and how
busy the fleet was over the run's window (what a yield price trades against).

Utilisation is the share of the fleet's connector time in the window spent with a car charging:
each stopped session from its start to its stop, cut at the window's edges, in permille.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from chargeshare.domain.dynamic_pricing import PricingMode
from chargeshare.services.records import BookingQuote, ChargerView, SessionRecord

NAMES = (
    "quoted_bookings",  # bookings made with a quote: every booking the run made
    "dynamic_quotes",  # of them, quoted by a host pricing dynamically
    "held_quote_bookings",  # of them, made with a quote held for the driver (it named the quote)
    "quote_min_per_kwh",
    "quote_max_per_kwh",
    "quote_mean_per_kwh",  # rounded down; pence
    "utilisation_permille",  # of the fleet's connector time in the window, with a car charging
)


def pricing_summary(
    quotes: Mapping[int, BookingQuote],
    sessions: Sequence[SessionRecord],
    chargers: Sequence[ChargerView],
    window: tuple[datetime, int] | None,
    held_used: int = 0,
) -> dict[str, int]:
    """`window`: the run's start and length in seconds; None (a replay): utilisation is not known, 0.
    `held_used`: how many bookings were made with a held quote."""
    prices = [q.per_kwh for q in quotes.values()]
    charging_s = connector_s = 0
    if window is not None:
        start, duration_s = window
        end = start + timedelta(seconds=duration_s)
        for s in sessions:
            if s.stopped_at is None:
                continue
            lo, hi = max(s.started_at, start), min(s.stopped_at, end)
            charging_s += max(0, int((hi - lo).total_seconds()))
        connector_s = sum(len(c.connectors) for c in chargers) * duration_s
    return {
        "quoted_bookings": len(prices),
        "dynamic_quotes": sum(1 for q in quotes.values() if q.mode == PricingMode.DYNAMIC.value),
        "held_quote_bookings": held_used,
        "quote_min_per_kwh": min(prices, default=0),
        "quote_max_per_kwh": max(prices, default=0),
        "quote_mean_per_kwh": sum(prices) // len(prices) if prices else 0,
        "utilisation_permille": charging_s * 1_000 // connector_s if connector_s else 0,
    }
