"""Dynamic yield pricing: a charger's price per kWh for a window, from the time of day, how busy the
chargers around it are, the host's own smart tariff, and the grid's carbon intensity and weather.

The rule is integer arithmetic in basis points over the host's listed price, then held within the
host's floor and ceiling: the same inputs give the same price, always. A host in flat mode charges
the listed price, whatever the signals say.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, time

from chargeshare.domain.availability import UK
from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.money import Pence

MAX_PRICE_PER_KWH = 1_000  # pence: ten pounds a kWh is no domestic price, only a typo
BPS = 10_000

# Adjustments to the listed price, in basis points. UK households' evening peak is 16:00 to 19:00;
# the night is when the grid has room and most smart tariffs are cheap.
EVENING_PEAK = (time(16), time(19))
NIGHT = (time(0), time(7))
PEAK_BPS = 2_000
NIGHT_BPS = -1_500
# Utilisation in permille around the charger: at half booked the price stands, and moves by up to
# this much either way as the area fills or empties.
UTILISATION_SPAN_BPS = 1_500
# Carbon intensity (gCO2/kWh): dearer when the grid is dirty, cheaper when it is clean, bounded.
CARBON_PIVOT_G = 200
CARBON_BPS_PER_G = 5
CARBON_MAX_BPS = 1_000
# Weather: a cold evening brings demand (heating, longer charges); strong sun brings cheap power.
COLD_BELOW_DECI_C = 50
COLD_BPS = 500
SUNNY_ABOVE_W_M2 = 400
SUNNY_BPS = -500
# The host's own tariff: never sold below what the host pays, plus this margin.
OWN_TARIFF_MARGIN_BPS = 1_000


class PricingMode(enum.StrEnum):
    FLAT = "flat"
    DYNAMIC = "dynamic"


@dataclass(frozen=True)
class SmartTariff:
    """What the host pays their supplier per kWh: a day rate and a cheaper night rate (00:00-07:00
    UK time), as the UK's EV tariffs price the night."""

    day_per_kwh: Pence
    night_per_kwh: Pence

    def __post_init__(self) -> None:
        for name, value in (("day", self.day_per_kwh), ("night", self.night_per_kwh)):
            if not 0 <= value <= MAX_PRICE_PER_KWH:
                raise InvalidRequest(f"the own tariff's {name} rate must be 0 to {MAX_PRICE_PER_KWH} pence")

    def rate_at(self, at: datetime) -> Pence:
        return self.night_per_kwh if _in(at, NIGHT) else self.day_per_kwh


@dataclass(frozen=True)
class HostPricing:
    """A host's pricing: flat (each charger's listed price) or dynamic within floor and ceiling."""

    mode: PricingMode
    floor_per_kwh: Pence
    ceiling_per_kwh: Pence
    own_tariff: SmartTariff

    def __post_init__(self) -> None:
        if not 0 < self.floor_per_kwh <= self.ceiling_per_kwh <= MAX_PRICE_PER_KWH:
            raise InvalidRequest(
                f"the floor and ceiling must satisfy 0 < floor <= ceiling <= {MAX_PRICE_PER_KWH} pence"
            )


@dataclass(frozen=True)
class GridReading:
    """The grid's state for a moment: carbon intensity and the weather."""

    carbon_g_per_kwh: int
    temperature_deci_c: int  # tenths of a degree Celsius
    solar_w_m2: int


@dataclass(frozen=True)
class PriceInputs:
    listed_per_kwh: Pence  # the charger's own price
    at: datetime  # when the charging window starts (aware)
    utilisation_permille: int  # of the connectors around the charger, booked over the window
    grid: GridReading


@dataclass(frozen=True)
class Price:
    """A price and what made it: each adjustment in basis points, and whether a bound held it."""

    per_kwh: Pence
    mode: PricingMode
    adjustments: tuple[tuple[str, int], ...] = ()
    bounded_by: str | None = None  # "floor", "ceiling", "own_tariff" or None


def _in(at: datetime, hours: tuple[time, time]) -> bool:
    if at.tzinfo is None:
        raise InvalidRequest("a price's time must be timezone-aware")
    local = at.astimezone(UK).time()
    return hours[0] <= local < hours[1]


def adjustments(inputs: PriceInputs) -> tuple[tuple[str, int], ...]:
    """Each signal's adjustment to the listed price, in basis points, in a fixed order."""
    if not 0 <= inputs.utilisation_permille <= 1_000:
        raise InvalidRequest("utilisation must be 0 to 1000 permille")
    g = inputs.grid
    time_of_day = PEAK_BPS if _in(inputs.at, EVENING_PEAK) else NIGHT_BPS if _in(inputs.at, NIGHT) else 0
    utilisation = (inputs.utilisation_permille - 500) * UTILISATION_SPAN_BPS // 500
    carbon = max(
        -CARBON_MAX_BPS, min(CARBON_MAX_BPS, (g.carbon_g_per_kwh - CARBON_PIVOT_G) * CARBON_BPS_PER_G)
    )
    weather = (COLD_BPS if g.temperature_deci_c < COLD_BELOW_DECI_C else 0) + (
        SUNNY_BPS if g.solar_w_m2 > SUNNY_ABOVE_W_M2 else 0
    )
    return (
        ("time_of_day", time_of_day),
        ("utilisation", utilisation),
        ("carbon", carbon),
        ("weather", weather),
    )


def _scaled(pence: int, bps: int) -> int:
    """`pence` x (1 + bps/10000), rounded half up, never below zero."""
    return max(0, (pence * (BPS + bps) * 2 + BPS) // (2 * BPS))


def price(settings: HostPricing | None, inputs: PriceInputs) -> Price:
    """The price per kWh for a window starting at `inputs.at`. No settings, or flat mode: the
    listed price. Dynamic: the listed price moved by the signals, at least the host's own tariff
    plus a margin, then held within the floor and ceiling (the host's bounds always win)."""
    if settings is None or settings.mode is PricingMode.FLAT:
        return Price(inputs.listed_per_kwh, PricingMode.FLAT)
    parts = adjustments(inputs)
    moved = _scaled(inputs.listed_per_kwh, sum(bps for _, bps in parts))
    bound: str | None = None
    cost = _scaled(settings.own_tariff.rate_at(inputs.at), OWN_TARIFF_MARGIN_BPS)
    if moved < cost:
        moved, bound = cost, "own_tariff"
    if moved < settings.floor_per_kwh:
        moved, bound = settings.floor_per_kwh, "floor"
    if moved > settings.ceiling_per_kwh:
        moved, bound = settings.ceiling_per_kwh, "ceiling"
    return Price(moved, PricingMode.DYNAMIC, parts, bound)
