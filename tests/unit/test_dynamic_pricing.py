"""Dynamic yield pricing as a pure rule: each signal's direction, the host's bounds, flat mode."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.domain.dynamic_pricing import (
    GridReading,
    HostPricing,
    PriceInputs,
    PricingMode,
    SmartTariff,
    price,
)
from chargeshare.domain.errors import InvalidRequest

CALM = GridReading(carbon_g_per_kwh=200, temperature_deci_c=120, solar_w_m2=0)
DYNAMIC = HostPricing(PricingMode.DYNAMIC, 10, 90, SmartTariff(day_per_kwh=25, night_per_kwh=7))
NOON = datetime(2026, 3, 4, 12, tzinfo=UTC)  # GMT: UK local time is UTC


def at(when: datetime, *, listed: int = 40, util: int = 500, grid: GridReading = CALM) -> PriceInputs:
    return PriceInputs(listed, when, util, grid)


def test_flat_mode_and_no_settings_charge_the_listed_price_whatever_the_signals() -> None:
    busy = at(NOON.replace(hour=17), util=1_000, grid=GridReading(450, 0, 0))
    flat = HostPricing(PricingMode.FLAT, 10, 20, SmartTariff(25, 7))
    assert price(None, busy).per_kwh == 40
    assert price(flat, busy).per_kwh == 40  # flat ignores even its bounds: the listed price stands


def test_a_calm_midday_at_half_utilisation_charges_the_listed_price() -> None:
    assert price(DYNAMIC, at(NOON)).per_kwh == 40


def test_the_evening_peak_is_dearer_and_the_night_cheaper_in_uk_local_time() -> None:
    assert price(DYNAMIC, at(NOON.replace(hour=17))).per_kwh == 48
    assert price(DYNAMIC, at(NOON.replace(hour=3))).per_kwh == 34
    summer_peak = datetime(2026, 7, 1, 15, 30, tzinfo=UTC)  # 16:30 BST
    assert price(DYNAMIC, at(summer_peak)).per_kwh == 48


def test_busier_areas_dirtier_grids_and_cold_weather_raise_the_price() -> None:
    assert price(DYNAMIC, at(NOON, util=1_000)).per_kwh == 46
    assert price(DYNAMIC, at(NOON, util=0)).per_kwh == 34
    assert price(DYNAMIC, at(NOON, grid=GridReading(300, 120, 0))).per_kwh == 42
    assert price(DYNAMIC, at(NOON, grid=GridReading(100, 120, 0))).per_kwh == 38
    assert price(DYNAMIC, at(NOON, grid=GridReading(200, 20, 0))).per_kwh == 42
    assert price(DYNAMIC, at(NOON, grid=GridReading(200, 120, 600))).per_kwh == 38


def test_the_host_bounds_hold_and_say_which_held() -> None:
    high = price(DYNAMIC, at(NOON.replace(hour=17), listed=80, util=1_000))
    assert (high.per_kwh, high.bounded_by) == (90, "ceiling")
    low = price(DYNAMIC, at(NOON.replace(hour=3), listed=10, util=0))
    assert (low.per_kwh, low.bounded_by) == (10, "floor")


def test_never_below_the_hosts_own_tariff_plus_its_margin() -> None:
    cheap_listing = price(DYNAMIC, at(NOON, listed=20, util=0))  # 20 x 0.85 = 17 < 25 x 1.1
    assert (cheap_listing.per_kwh, cheap_listing.bounded_by) == (28, "own_tariff")


def test_bounds_that_make_no_sense_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        HostPricing(PricingMode.DYNAMIC, 50, 40, SmartTariff(25, 7))
    with pytest.raises(InvalidRequest):
        HostPricing(PricingMode.DYNAMIC, 0, 40, SmartTariff(25, 7))
    with pytest.raises(InvalidRequest):
        SmartTariff(-1, 7)
    with pytest.raises(InvalidRequest):
        price(DYNAMIC, at(NOON, util=1_001))


@given(
    listed=st.integers(0, 1_000),
    util=st.integers(0, 1_000),
    carbon=st.integers(0, 1_000),
    temp=st.integers(-200, 400),
    sun=st.integers(0, 1_200),
    hour=st.integers(0, 23),
    floor=st.integers(1, 500),
    span=st.integers(0, 500),
)
def test_a_dynamic_price_always_lies_within_the_hosts_bounds_and_repeats(
    listed: int, util: int, carbon: int, temp: int, sun: int, hour: int, floor: int, span: int
) -> None:
    settings = HostPricing(PricingMode.DYNAMIC, floor, floor + span, SmartTariff(30, 8))
    inputs = at(NOON.replace(hour=hour), listed=listed, util=util, grid=GridReading(carbon, temp, sun))
    quoted = price(settings, inputs)
    assert floor <= quoted.per_kwh <= floor + span
    assert quoted == price(settings, inputs)
