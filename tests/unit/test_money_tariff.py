from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.domain.errors import InvalidRequest
from chargeshare.domain.money import format_gbp, format_kwh, split_fee
from chargeshare.domain.tariff import Tariff


@pytest.mark.parametrize(
    ("pence", "text"),
    [(0, "£0.00"), (5, "£0.05"), (1234, "£12.34"), (-5, "-£0.05"), (123456789, "£1,234,567.89")],
)
def test_format_gbp(pence: int, text: str) -> None:
    assert format_gbp(pence) == text


def test_format_kwh() -> None:
    assert format_kwh(12_345) == "12.34 kWh"


@given(st.integers(0, 10**9), st.integers(0, 10_000))
def test_split_always_sums_and_fee_rounds_down(cost: int, bps: int) -> None:
    s = split_fee(cost, bps)
    assert s.host_share + s.platform_fee == cost
    assert 0 <= s.platform_fee <= cost * bps / 10_000 < s.platform_fee + 1


def test_split_rejects_bad_input() -> None:
    with pytest.raises(InvalidRequest):
        split_fee(-1, 100)
    with pytest.raises(InvalidRequest):
        split_fee(100, 10_001)


@pytest.mark.parametrize(
    ("wh", "price", "cost"),
    [(0, 30, 0), (1000, 30, 30), (16, 30, 0), (17, 30, 1), (10_500, 45, 473), (999, 1, 1)],
)
def test_tariff_cost_rounds_half_up(wh: int, price: int, cost: int) -> None:
    assert Tariff(price).cost(wh) == cost


@given(st.integers(1, 500), st.integers(0, 100_000))
def test_max_energy_for_budget_is_the_largest_that_fits(price: int, budget: int) -> None:
    t = Tariff(price)
    e = t.max_energy_for(budget)
    assert t.cost(e) <= budget < t.cost(e + 1)


def test_tariff_rejects_negative() -> None:
    with pytest.raises(InvalidRequest):
        Tariff(-1)
    with pytest.raises(InvalidRequest):
        Tariff(10).cost(-5)
