"""Simulated hosts' dynamic pricing and drivers' price limits, as the fleet generator makes them."""

from __future__ import annotations

import random
from dataclasses import replace

from simulators.fleet import CITIES, DriverBehaviour, dynamic_settings, make_drivers


def test_price_limits_leave_the_drivers_as_they_were_and_fall_in_their_range() -> None:
    plain = make_drivers(random.Random(3), 40, CITIES["bristol"], 3_600)
    limited = make_drivers(
        random.Random(3), 40, CITIES["bristol"], 3_600, DriverBehaviour(max_price=(20, 50))
    )
    assert [replace(p, max_price_per_kwh=None) for p in limited] == plain
    assert all(p.max_price_per_kwh is not None and 20 <= p.max_price_per_kwh <= 50 for p in limited)


def test_dynamic_hosts_are_bounded_around_their_listed_price() -> None:
    s = dynamic_settings(40)
    assert (s.floor_per_kwh, s.ceiling_per_kwh, s.mode.value) == (24, 64, "dynamic")
