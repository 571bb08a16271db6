"""The allocation with each connector's own minimum (6 A on each phase unless its charger switches
three to one) against an oracle: no site or feeder over what it leaves, every car at 0 or at least
its minimum (0 where its rating is under it, holding nothing), every limit sent as decided, and no
car paused while its minimum fits beside the cars charging."""

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
    phases_within,
)
from chargeshare.ocpp.grid_limits import obeyable_w
from tests.conftest import T0, examples

MINUTE = timedelta(minutes=1)
ONE = min_charging_w(1, False)
THREE = min_charging_w(3, False)
EDGES_W = [1_000, ONE - 1, ONE, 2 * ONE, 3_680, THREE - 1, THREE]
# Each connector's declared phases, whether its charger switches three to one, and its rating.
Wired = dict[int, tuple[int, bool, int]]


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


def test_a_connector_rated_under_one_phases_minimum_is_given_0_and_holds_nothing() -> None:
    """Rated 1,000 W, under the 1,380 W a car takes on one phase, it is sent 0 whatever it is given
    (`obeyable_w`): so it is given 0, and a car started after it on a 2,000 W site charges on the
    2,000 W rather than waiting behind 1,000 W held for a connector that never draws them."""
    site = Site(1, 1, "s", 2_000)
    least = min_charging_w(1, False, rating_w=1_000)
    cars = [Charging(1, 1, 1_000, T0, least), Charging(2, 1, 7_400, T0 + MINUTE, ONE)]
    got = allocate([site], [], cars, [], T0)
    assert got.limits_w == {1: 0, 2: 2_000}
    assert got.paused == frozenset()
    # Idle, it is given 0 too, and the car charging keeps the rest.
    idle = allocate([site], [], cars[1:], [], T0, idle=[Idle(1, 1, 1_000, least)])
    assert idle.limits_w == {1: 0, 2: 2_000}


@st.composite
def grids(
    draw: st.DrawFn,
) -> tuple[list[Site], list[Feeder], list[Charging], list[Idle], list[FlexEvent], Wired]:
    wiring: Wired = {}
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
        # From the API's least rating (1,000 W), and around each phase count's minimum.
        rating = draw(st.one_of(st.integers(1_000, 22_000), st.sampled_from(EDGES_W)))
        phases, switches = draw(st.sampled_from([1, 3])), draw(st.booleans())
        wiring[c] = (phases, switches, rating)
        least = min_charging_w(phases, switches, rating_w=rating)  # as the grid service takes it
        if draw(st.booleans()):
            cars.append(Charging(c, site, rating, T0 + draw(st.integers(0, 5)) * MINUTE, least))
        else:
            idle.append(Idle(c, site, rating, least))
    events = [
        FlexEvent(1, Scope.SITE, s.site_id, draw(st.integers(0, 8_000)), T0, T0 + MINUTE)
        for s in sites
        if draw(st.booleans())
    ]
    return sites, feeders, cars, idle, events, wiring


@given(grids())
@settings(max_examples=examples(300))
def test_mixed_minimums_keep_every_limit_and_starve_no_car(
    grid: tuple[list[Site], list[Feeder], list[Charging], list[Idle], list[FlexEvent], Wired],
) -> None:
    sites, feeders, cars, idle, events, wiring = grid
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
    floor = {c.connector_id: c.min_w or ONE for c in cars}
    # Rated under its minimum (only under one phase's 1,380 W: `phases_within`), a car can charge
    # on no limit: it is given 0, is not paused for want of power, and holds nothing.
    unable = {c.connector_id for c in cars if floor[c.connector_id] > c.rating_w}
    assert all(c.rating_w < ONE for c in cars if c.connector_id in unable)
    for c in cars:
        w = got.limits_w[c.connector_id]
        assert (w == 0) == (c.connector_id in got.paused | unable)
        assert w == 0 or floor[c.connector_id] <= w <= c.rating_w
    for i in idle:
        least = i.min_w or ONE
        assert got.limits_w[i.connector_id] in ((0, least) if least <= i.rating_w else (0,))
    # What is sent is what was decided: every limit is one its connector can charge on.
    for connector, w in got.limits_w.items():
        phases, switches, rating = wiring[connector]
        assert obeyable_w(w, phases_within(phases, rating), switches) == w, (connector, w)
    # The oracle: a paused car's minimum would not fit beside the charging cars' minimums.
    need = dict.fromkeys(caps, 0)
    for c in cars:
        if c.connector_id not in got.paused | unable:
            for k in under[c.connector_id]:
                need[k] += floor[c.connector_id]
    for c in cars:
        if c.connector_id in got.paused:
            assert any(need[k] + floor[c.connector_id] > caps[k] for k in under[c.connector_id])
