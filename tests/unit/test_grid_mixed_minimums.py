"""The allocation with each connector's own minimum (6 A on each phase unless its charger switches
three to one) against an oracle: no site or feeder over what it leaves, every car at 0 or at least
its minimum, and no car paused while its minimum fits beside the cars charging."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from chargeshare.domain.grid_limits import (
    Charging,
    Feeder,
    FlexEvent,
    Idle,
    Scope,
    Site,
    allocate,
    capacities_w,
    constraints,
    min_charging_w,
)
from tests.conftest import T0, examples

MINUTE = timedelta(minutes=1)
ONE = min_charging_w(1, False)
THREE = min_charging_w(3, False)


def test_a_car_whose_minimum_fits_is_not_paused_behind_a_larger_minimum() -> None:
    # A one-phase car started last is paused with the three-phase one before it, though once that
    # one is paused there is room for both one-phase cars' minimums.
    site = Site(1, 1, "s", 4_000)
    cars = [
        Charging(1, 1, 7_400, T0, ONE),
        Charging(2, 1, 11_000, T0 + MINUTE, THREE),
        Charging(3, 1, 7_400, T0 + 2 * MINUTE, ONE),
    ]
    got = allocate([site], [], cars, [], T0)
    assert got.paused == {2}
    assert got.limits_w[3] >= ONE
    assert got.limits_w[1] + got.limits_w[3] <= 4_000


@st.composite
def grids(draw: st.DrawFn) -> tuple[list[Site], list[Feeder], list[Charging], list[Idle], list[FlexEvent]]:
    feeders = [Feeder(f, f"f{f}", draw(st.integers(ONE, 30_000))) for f in range(draw(st.integers(0, 2)))]
    sites = [
        Site(
            s,
            s,
            f"s{s}",
            draw(st.integers(ONE, 20_000)),
            draw(st.integers(0, 5_000)),
            draw(st.sampled_from([None, *(f.feeder_id for f in feeders)])),
        )
        for s in range(1, draw(st.integers(1, 3)) + 1)
    ]
    cars: list[Charging] = []
    idle: list[Idle] = []
    for c in range(1, draw(st.integers(0, 7)) + 1):
        site = draw(st.sampled_from(sites)).site_id
        least = min_charging_w(draw(st.sampled_from([1, 3])), draw(st.booleans()))
        rating = draw(st.integers(ONE, 22_000))
        if draw(st.booleans()):
            cars.append(Charging(c, site, rating, T0 + draw(st.integers(0, 5)) * MINUTE, least))
        else:
            idle.append(Idle(c, site, rating, least))
    events = [
        FlexEvent(1, Scope.SITE, s.site_id, draw(st.integers(0, 8_000)), T0, T0 + MINUTE)
        for s in sites
        if draw(st.booleans())
    ]
    return sites, feeders, cars, idle, events


@given(grids())
@settings(max_examples=examples(300))
def test_mixed_minimums_keep_every_limit_and_starve_no_car(
    grid: tuple[list[Site], list[Feeder], list[Charging], list[Idle], list[FlexEvent]],
) -> None:
    sites, feeders, cars, idle, events = grid
    got = allocate(sites, feeders, cars, events, T0, idle=idle)
    caps = capacities_w(sites, feeders, events, T0)
    by_site = {s.site_id: s for s in sites}
    placed = [(c.connector_id, c.site_id) for c in cars] + [(i.connector_id, i.site_id) for i in idle]
    under = {no: constraints(by_site[site]) for no, site in placed}
    used = dict.fromkeys(caps, 0)
    for connector, w in got.limits_w.items():
        for k in under[connector]:
            used[k] += w
    assert all(used[k] <= caps[k] for k in caps), (used, caps)
    floor = {c.connector_id: min(c.min_w or ONE, c.rating_w) for c in cars}
    for c in cars:
        w = got.limits_w[c.connector_id]
        assert (w == 0) == (c.connector_id in got.paused)
        assert w == 0 or floor[c.connector_id] <= w <= c.rating_w
    for i in idle:
        assert got.limits_w[i.connector_id] in (0, min(i.min_w or ONE, i.rating_w))
    # The oracle: a paused car's minimum would not fit beside the charging cars' minimums.
    need = dict.fromkeys(caps, 0)
    for c in cars:
        if c.connector_id not in got.paused:
            for k in under[c.connector_id]:
                need[k] += floor[c.connector_id]
    for c in cars:
        if c.connector_id in got.paused:
            assert any(need[k] + floor[c.connector_id] > caps[k] for k in under[c.connector_id])
