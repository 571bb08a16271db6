"""The Electric Vehicles (Smart Charge Points) Regulations 2021 (SI 2021/1467), as pure rules.

Regulation 10 (off-peak charging): a relevant charge point comes with default charging hours outside
peak hours, which its owner may accept, remove or change at first use and at any time after; an
owner or end-user may override them. Peak hours are 08:00-11:00 and 16:00-22:00 on weekdays, UK
local time (so they follow the clocks changing).

Regulation 11 (randomised delay): at each relevant time the charge point operates with a random
delay of up to 600 seconds, to the nearest second; it must be able to go up to 1,800 seconds, its
maximum may be raised or lowered remotely, and the owner may override it. It does not operate where
the owner or an end-user has overridden it, an equivalent delay has already been applied for that
relevant time, or the charge point is providing response DSR services then. A relevant time is the
point at which, but for the delay, electricity would start flowing to charge a vehicle, or its rate
would be increased or decreased.

The charger carries these duties out (simulators/smart_gate.py); the backend keeps the owner's
choices, a driver's override and the DSR status, and sends them (services/smart_charging.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from chargeshare.domain.availability import WeeklyWindow, open_intervals
from chargeshare.domain.errors import InvalidRequest

DEFAULT_DELAY_MAX_S = 600
DELAY_CAPABLE_MAX_S = 1_800  # what the charge point must be able to operate with: the bound we accept
WEEKDAYS = range(5)  # Monday to Friday
# Peak hours, as (start, end) minutes after local midnight.
PEAK_MINUTES = ((8 * 60, 11 * 60), (16 * 60, 22 * 60))
PEAK_WINDOWS = tuple(WeeklyWindow(day, a, b) for day in WEEKDAYS for a, b in PEAK_MINUTES)


@dataclass(frozen=True)
class SmartSettings:
    """A charger's settings under the regulations: the owner's choices and the DSR status. The
    defaults are the regulations' own: what a charge point is pre-configured with."""

    randomised_delay_max_s: int = DEFAULT_DELAY_MAX_S
    randomised_delay_override: bool = False  # the owner has overridden the randomised delay
    default_charging_hours: bool = True  # the owner kept the default charging hours
    demand_side_response: bool = False  # providing response DSR services now (an operator's flag)

    def __post_init__(self) -> None:
        if not 0 <= self.randomised_delay_max_s <= DELAY_CAPABLE_MAX_S:
            raise InvalidRequest(
                f"the randomised delay's maximum must be 0 to {DELAY_CAPABLE_MAX_S} seconds, "
                f"got {self.randomised_delay_max_s}"
            )


class Suppressed(StrEnum):
    """Why the randomised delay does not operate at a relevant time (regulation 11(2))."""

    END_USER = "end_user"  # the driver overrode it for this charge
    OWNER = "owner"  # the host overrode it
    DSR = "dsr"  # the charge point is providing response DSR services


def delay_suppressed(settings: SmartSettings, *, end_user_override: bool) -> Suppressed | None:
    """Whether the randomised delay is off at a relevant time, and why (the end-user's choice first)."""
    if end_user_override:
        return Suppressed.END_USER
    if settings.randomised_delay_override:
        return Suppressed.OWNER
    if settings.demand_side_response:
        return Suppressed.DSR
    return None


def draw_delay(rng: random.Random, max_s: int) -> int:
    """A delay drawn uniformly in [0, max_s], to the nearest second."""
    return rng.randint(0, max_s)


def peak_periods(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The peak hours overlapping [start, end), in UTC."""
    return open_intervals(PEAK_WINDOWS, start, end)


def in_peak(at: datetime) -> bool:
    """Whether `at` falls within peak hours (each window includes its start, not its end)."""
    return any(a <= at < b for a, b in peak_periods(at - timedelta(days=1), at + timedelta(days=1)))


def peak_edges_after(at: datetime, horizon: timedelta = timedelta(days=4)) -> list[datetime]:
    """Every start and end of peak hours after `at`, within `horizon` (a weekend fits in four days)."""
    edges = {e for period in peak_periods(at, at + horizon) for e in period}
    return sorted(e for e in edges if e > at)


def charging_blocked(at: datetime, stop_spread_s: int) -> bool:
    """Whether default charging hours forbid drawing power at `at`. They end `stop_spread_s` before
    each peak window, so that the randomised delay on the decrease (drawn in [0, stop_spread_s])
    still lands the stop before peak hours begin: both regulations hold."""
    spread = timedelta(seconds=stop_spread_s)
    return any(a - spread <= at < b for a, b in peak_periods(at - timedelta(days=1), at + timedelta(days=1)))


def blocked_edges_after(at: datetime, stop_spread_s: int) -> list[datetime]:
    """Where `charging_blocked` may change after `at`: each peak window's end, and its start brought
    forward by the stop spread; the peak edges themselves too, where energy is accounted."""
    spread = timedelta(seconds=stop_spread_s)
    edges: set[datetime] = set()
    for a, b in peak_periods(at, at + timedelta(days=4)):
        edges |= {a - spread, a, b}
    return sorted(e for e in edges if e > at)
